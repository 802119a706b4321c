"""The deployment files as data: the Compose file, parsed, and its eventwire services."""

from __future__ import annotations

from typing import Any, Final

import yaml

from tests.support.paths import ROOT

DEPLOY: Final = ROOT / "deploy"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def eventwire_services() -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in compose()["services"].items()
        if any(k.startswith("EVENTWIRE_") for k in svc.get("environment", {}))
    }
