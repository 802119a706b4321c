"""Client credentials: TLS (server CA, client certificate for mTLS) and bearer tokens.

Pass the result as ``credentials=`` to :func:`eventwire.client.resilient_channel`
(or to ``grpc.aio.secure_channel``)::

    creds = credentials(ca="ca.pem", cert="client.pem", key="client.key", token=token)
    channel = resilient_channel("events.example.com:443", credentials=creds)

grpcio only attaches call credentials (the token) to TLS channels, so a token
always travels encrypted. To send a token over plaintext, which is only sane on
loopback or behind a TLS-terminating proxy, use :func:`token_metadata` as the
per-call ``metadata`` instead.
"""

from __future__ import annotations

from pathlib import Path

import grpc

__all__ = [
    "BearerToken",
    "call_credentials",
    "channel_credentials",
    "credentials",
    "token_metadata",
]

PemSource = str | Path | bytes


def _pem(source: PemSource | None) -> bytes | None:
    """PEM bytes as given, or read from a path."""
    if source is None or isinstance(source, bytes):
        return source
    return Path(source).read_bytes()


def channel_credentials(
    *, ca: PemSource | None = None, cert: PemSource | None = None, key: PemSource | None = None
) -> grpc.ChannelCredentials:
    """TLS credentials; ``ca`` None trusts the system roots, ``cert`` + ``key`` enable mTLS."""
    if (cert is None) != (key is None):
        raise ValueError("a client certificate needs its key, and a key its certificate")
    return grpc.ssl_channel_credentials(
        root_certificates=_pem(ca), private_key=_pem(key), certificate_chain=_pem(cert)
    )


class BearerToken(grpc.AuthMetadataPlugin):
    """Adds ``authorization: Bearer TOKEN`` to every call of a TLS channel."""

    def __init__(self, token: str) -> None:
        if not token or any(c.isspace() or not c.isprintable() for c in token):
            # The message must not echo the token.
            raise ValueError("a token is printable ASCII without spaces")
        self._metadata = (("authorization", f"Bearer {token}"),)

    def __call__(
        self, context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback
    ) -> None:
        callback(self._metadata, None)

    def __repr__(self) -> str:
        return "BearerToken(***)"


def call_credentials(token: str) -> grpc.CallCredentials:
    return grpc.metadata_call_credentials(BearerToken(token), name="eventwire-bearer")


def credentials(
    *,
    ca: PemSource | None = None,
    cert: PemSource | None = None,
    key: PemSource | None = None,
    token: str | None = None,
) -> grpc.ChannelCredentials:
    """TLS channel credentials, with the bearer token on every call when ``token`` is set."""
    tls = channel_credentials(ca=ca, cert=cert, key=key)
    if not token:
        return tls
    return grpc.composite_channel_credentials(tls, call_credentials(token))


def token_metadata(token: str) -> tuple[tuple[str, str]]:
    """The call metadata that carries ``token``, for channels without call credentials."""
    BearerToken(token)  # the same validation
    return (("authorization", f"Bearer {token}"),)
