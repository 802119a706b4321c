"""Configuration: defaults, EVENTWIRE_* over defaults, flags over both, bad values refused."""

from __future__ import annotations

import pytest

from eventwire import config
from eventwire.runtime.cli import EXIT_USAGE, build_parser, main


def parse(argv: list[str], env: dict[str, str]) -> config.ServerConfig:
    return config.from_namespace(build_parser(env).parse_args(["serve", *argv]))


def test_defaults_serve_sqlite_on_50051() -> None:
    cfg = parse([], {})
    assert cfg.address == "0.0.0.0:50051"
    assert cfg.store.startswith("sqlite:///")
    assert cfg.reflection is True


def test_environment_overrides_defaults_and_flags_override_environment() -> None:
    env = {
        "EVENTWIRE_ADDRESS": "127.0.0.1:6000",
        "EVENTWIRE_GRACE": "2.5",
        "EVENTWIRE_REFLECTION": "off",
        "EVENTWIRE_MAX_BATCH_EVENTS": "50",
    }
    cfg = parse([], env)
    assert (cfg.address, cfg.grace, cfg.reflection, cfg.max_batch_events) == (
        "127.0.0.1:6000",
        2.5,
        False,
        50,
    )
    cfg = parse(["--address", "127.0.0.1:7000", "--reflection"], env)
    assert (cfg.address, cfg.reflection) == ("127.0.0.1:7000", True)


def test_config_is_frozen() -> None:
    cfg = config.ServerConfig()
    with pytest.raises(AttributeError):
        cfg.address = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("address", "nohostport", "HOST:PORT"),
        ("store", "mysql://x", "sqlite:///"),
        ("grace", -1.0, "grace"),
        ("sqlite_synchronous", "sometimes", "sqlite_synchronous"),
        ("max_batch_events", 0, "max_batch_events"),
        ("health_port", 70000, "health_port"),
        ("health_port", 50051, "already the gRPC or HTTP port"),
        ("health_port", 8080, "already the gRPC or HTTP port"),
    ],
)
def test_invalid_values_are_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config.ServerConfig(**{field: value})  # type: ignore[arg-type]


def test_a_bad_environment_value_names_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve"], {"EVENTWIRE_GRACE": "soon"})
    assert info.value.code == EXIT_USAGE
    assert "EVENTWIRE_GRACE='soon'" in capsys.readouterr().err


def test_an_invalid_combination_exits_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--address", "nohost"], {}) == EXIT_USAGE
    assert "HOST:PORT" in capsys.readouterr().err
