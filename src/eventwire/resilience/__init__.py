"""Resilience policies shared by the client SDK and the destinations' relays.

Pure, without I/O: the policies (:mod:`.policy`: small frozen dataclasses),
backoff maths (:mod:`.backoff`) and the circuit breaker's state machine
(:mod:`.breaker`). The client re-exports them under their public names
(``eventwire.client.RetryPolicy``, ...); the relays drive the same objects.
"""
