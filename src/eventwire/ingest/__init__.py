"""Taking data in: validation, normalisation, the service logic and the group-commit pipeline.

Transport-neutral: nothing here imports grpcio or any ASGI code; both front
doors call :class:`~eventwire.ingest.service.IngestService` with decoded
protobuf messages and map its :mod:`eventwire._errors` to their own status.
"""
