"""The read side: cursors, the live feed, the read use cases and retention.

Reads sit beside ingest (they use its validation rules and alert rendering);
ingest never imports them.
"""
