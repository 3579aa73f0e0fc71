"""Prompt templates: the library of `prompts/*.md.j2` (`library.py`), rendered in a sandbox
with limits on what a render may build and how long it may take (`sandbox.py`)."""
