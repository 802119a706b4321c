"""Channels with eventwire's policies installed as interceptors, for any stub."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from typing import Any, Final, Unpack

import grpc

from eventwire.client._aio_interceptors import aio_interceptors
from eventwire.client._config import BARE, ChannelOptions, ClientConfig, ClientOptions, configure
from eventwire.client._core import Resilience
from eventwire.client._sync_interceptors import sync_interceptors

__all__ = ["channel_options", "resilient_channel", "resilient_sync_channel", "targets"]

_FORCED: Final = (
    # One retry layer only: grpcio's service-config retries would multiply
    # with ours (4 x 4 attempts) and cannot see our deadline or breaker.
    ("grpc.enable_retries", 0),
)
SERVICE_CONFIG: Final = json.dumps(
    {
        # Spread calls over every address the target resolves to (several
        # replicas behind dns:///host:port or an ipv4:a,b,c list) ...
        "loadBalancingConfig": [{"round_robin": {}}],
        # ... and skip replicas whose grpc.health.v1 says NOT_SERVING (draining,
        # storage down) before a call fails there. Servers without a health
        # service are taken as healthy.
        "healthCheckConfig": {"serviceName": ""},
    }
)
_DEFAULTS: Final = (
    # grpcio waits 1 s, then up to 120 s, between reconnection attempts; a
    # client with 200 ms deadlines wants a restarted server found sooner.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


def targets(*addresses: str) -> str:
    """One gRPC target for several ``host:port`` replicas, balanced by eventwire's channels.

    IPv4 literals become an ``ipv4:`` list, IPv6 ones an ``ipv6:`` list; for
    names, give one ``dns:///name:port`` target whose name resolves to them all.
    """
    if not addresses:
        raise ValueError("targets() needs at least one address")
    if all(a.startswith("[") for a in addresses):
        return "ipv6:" + ",".join(addresses)
    hosts = [a.rpartition(":")[0] for a in addresses]
    if all(h.replace(".", "").isdigit() and h.count(".") == 3 for h in hosts):
        return "ipv4:" + ",".join(addresses)
    raise ValueError(
        "targets() takes IP literals (ipv4 or [ipv6]); for host names use one "
        "dns:///name:port target that resolves to every replica"
    )


def balanced(target: str) -> bool:
    """Whether ``target`` names several replicas (an address list, or a DNS name).

    Only those get round robin with health checking: it keeps every replica
    connected in the background, which a single server does not need (grpcio's
    pick_first connects lazily, and not at all while no call is made).
    """
    if target.startswith(("ipv4:", "ipv6:")):
        return "," in target
    return target.startswith("dns:")


def channel_options(options: ChannelOptions = (), target: str = "") -> list[tuple[str, Any]]:
    """eventwire's channel arguments: its defaults, then ``options``, then the forced ones."""
    merged: dict[str, Any] = dict(_DEFAULTS)
    if balanced(target):
        merged["grpc.service_config"] = SERVICE_CONFIG
    merged.update(dict(options))
    merged.update(dict(_FORCED))
    return list(merged.items())


def resilient_channel(
    target: str,
    config: ClientConfig | None = None,
    *,
    idempotent: Callable[[str], bool] | Collection[str] | bool = True,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
    **options: Unpack[ClientOptions],
) -> grpc.aio.Channel:
    """A ``grpc.aio`` channel whose calls get eventwire's deadlines, retries, breaker and hedging.

    ``config`` (a :class:`ClientConfig`, or its fields as keyword arguments)
    says which; here every policy is opt-in: the default is :data:`BARE`
    (the eventwire clients turn them on by default). ``idempotent`` says which
    full method names (``/pkg.Service/Method``) are safe to retry or hedge:
    True for all, a collection of names, or a predicate. ``config.timeout`` is
    the default deadline for calls that set none. ``interceptors`` run inside
    ours, once per attempt. Share a :class:`CircuitBreaker` or
    :class:`RetryThrottle` between channels to the same backend by passing the
    same object to each.
    """
    cfg = configure(config, options, base=BARE)
    res = Resilience(target, cfg, idempotent=idempotent)
    chain = [*aio_interceptors(res), *interceptors]
    return plain_aio_channel(target, cfg.credentials, cfg.options, chain)


def plain_aio_channel(
    target: str,
    credentials: grpc.ChannelCredentials | None,
    options: ChannelOptions,
    chain: Sequence[grpc.aio.ClientInterceptor] | None = None,
) -> grpc.aio.Channel:
    opts = channel_options(options, target)
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=opts, interceptors=chain)
    return grpc.aio.secure_channel(target, credentials, options=opts, interceptors=chain)


def resilient_sync_channel(
    target: str,
    config: ClientConfig | None = None,
    *,
    idempotent: Callable[[str], bool] | Collection[str] | bool = True,
    **options: Unpack[ClientOptions],
) -> grpc.Channel:
    """The blocking twin of :func:`resilient_channel` (every call shape; no hedging)."""
    cfg = configure(config, options, base=BARE)
    if cfg.hedging is not None:
        raise ValueError("hedging needs the async channel (resilient_channel) or a sync client")
    res = Resilience(target, cfg, idempotent=idempotent)
    return grpc.intercept_channel(
        plain_sync_channel(target, cfg.credentials, cfg.options), *sync_interceptors(res)
    )


def plain_sync_channel(
    target: str, credentials: grpc.ChannelCredentials | None, options: ChannelOptions
) -> grpc.Channel:
    opts = channel_options(options, target)
    if credentials is None:
        return grpc.insecure_channel(target, options=opts)
    return grpc.secure_channel(target, credentials, options=opts)
