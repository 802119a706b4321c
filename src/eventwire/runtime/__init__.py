"""Running eventwire: the composition root, the worker supervisor and the CLI.

The only package that imports the front doors.
"""
