"""Which targets get round robin, and how several replicas become one target."""

from __future__ import annotations

import pytest

import eventwire.client as ec


def test_targets_builds_ip_lists_and_refuses_names() -> None:
    assert ec.targets("127.0.0.1:1", "10.0.0.2:2") == "ipv4:127.0.0.1:1,10.0.0.2:2"
    assert ec.targets("[::1]:1", "[::1]:2") == "ipv6:[::1]:1,[::1]:2"
    with pytest.raises(ValueError, match="dns:///"):
        ec.targets("replica-a:50051", "replica-b:50051")
    with pytest.raises(ValueError, match="at least one"):
        ec.targets()


def test_only_multi_replica_targets_are_balanced() -> None:
    assert ec.channel_options(target="ipv4:127.0.0.1:1,127.0.0.1:2")
    assert "grpc.service_config" in dict(ec.channel_options(target="dns:///replicas:50051"))
    assert "grpc.service_config" in dict(ec.channel_options(target="ipv4:1.2.3.4:1,1.2.3.4:2"))
    assert "grpc.service_config" not in dict(ec.channel_options(target="localhost:50051"))
    assert "grpc.service_config" not in dict(ec.channel_options(target="ipv4:1.2.3.4:1"))
