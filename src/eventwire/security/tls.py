"""TLS material for both front doors, read once from the files the config names.

Each front door turns it into its own credentials (grpcio's, uvicorn's); here it
is only read and checked, so a bad file is refused at start with a message that
names it.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from eventwire.config import ServerConfig


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True, slots=True)
class ServerTls:
    """The server's certificate and key, and the CA its clients must be signed by (mTLS)."""

    cert_file: str
    key_file: str
    client_ca_file: str
    cert: bytes
    key: bytes
    client_ca: bytes | None

    @classmethod
    def from_config(cls, config: ServerConfig) -> ServerTls | None:
        """None when TLS is off; :class:`ValueError` when a file cannot be read or used."""
        if not config.tls_cert:
            return None
        tls = cls(
            config.tls_cert,
            config.tls_key,
            config.tls_client_ca,
            _read(config.tls_cert, "--tls-cert"),
            _read(config.tls_key, "--tls-key"),
            _read(config.tls_client_ca, "--tls-client-ca") if config.tls_client_ca else None,
        )
        # grpcio only finds out about a bad pair at the first handshake; the
        # ssl module says so now, with a message that names the problem.
        tls.ssl_context()
        return tls

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
            if self.client_ca_file:
                context.load_verify_locations(self.client_ca_file)
                context.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"unusable TLS certificate, key or CA: {exc}") from None
        return context
