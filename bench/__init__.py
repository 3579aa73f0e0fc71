"""chinwag's benchmark harness: `python -m bench [--quick] [--only NAME]`.

Every figure is a ratio to a baseline measured in the same run, alternating baseline and
subject runs, so that noise from other work on the machine hits both alike. See README.md.
"""
