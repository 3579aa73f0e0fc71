"""chinwag's own tools. Each module is registered through the `chinwag.tools` entry point
group in pyproject.toml, exactly as a third-party plugin's would be."""
