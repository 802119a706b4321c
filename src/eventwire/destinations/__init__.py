"""Destinations: every committed event and alert relayed onward, in commit order."""
