"""The `chinwag` command: one module per group of subcommands, options shared in `options.py`."""
