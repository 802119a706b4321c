"""The front doors: each maps ingest, security and store results to its own status model.

Neither imports the other; only :mod:`eventwire.runtime` imports them.
"""
