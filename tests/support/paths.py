"""Where things are, for tests that read the repository's own files."""

from __future__ import annotations

from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
"""The repository's top directory."""
SEEDS: Final = ROOT / "tests" / "support" / "seeds"
"""The seeds' .proto files, verbatim: the wire contract's baseline."""
