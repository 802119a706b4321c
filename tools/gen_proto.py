"""Generate the Python code for proto/*.proto into src/eventwire/api.

    python tools/gen_proto.py           # regenerate in place
    python tools/gen_proto.py --check   # exit 1 when the committed code is stale

The generated modules import each other as top-level modules (``import
analytics_pb2``); they are rewritten to package-relative imports so that nothing
has to be put on ``sys.path`` and nothing loads a .proto file at run time.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "src" / "eventwire" / "api"
BIN = Path(sys.executable).parent

_IMPORT = re.compile(r"^import (\w+_pb2) as (\w+)$", re.MULTILINE)
# Any of proto/'s own modules (analytics, telemetry, destinations, ...).
_FROM_IMPORT = re.compile(r"^(from|import) (\w+)(_pb2\w*)\b", re.MULTILINE)


def generate(out: Path) -> None:
    protos = sorted(p.name for p in PROTO_DIR.glob("*.proto"))
    subprocess.run(  # noqa: S603 - fixed argv, no shell
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"--plugin=protoc-gen-mypy={BIN / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={BIN / 'protoc-gen-mypy_grpc'}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            f"--mypy_out={out}",
            f"--mypy_grpc_out={out}",
            *protos,
        ],
        check=True,
    )
    for path in sorted(out.glob("*.py*")):
        text = path.read_text()
        text = _IMPORT.sub(r"from . import \1 as \2", text)
        text = _FROM_IMPORT.sub(lambda m: f"{m[1]} eventwire.api.{m[2]}{m[3]}", text)
        path.write_text(text)
    (out / "__init__.py").write_text(
        '"""Generated from proto/ by tools/gen_proto.py. Do not edit."""\n'
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when src/eventwire/api is stale")
    args = parser.parse_args()
    if not args.check:
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        for old in OUT_DIR.glob("*_pb2*"):
            old.unlink()
        generate(OUT_DIR)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        names = sorted(p.name for p in fresh.iterdir())
        committed = sorted(p.name for p in OUT_DIR.iterdir() if p.is_file())
        stale = [n for n in names if not (OUT_DIR / n).exists()]
        stale += [n for n in committed if n not in names]
        _, mismatch, errors = filecmp.cmpfiles(fresh, OUT_DIR, names, shallow=False)
        stale += mismatch + errors
        if stale:
            print(f"stale generated code: {sorted(set(stale))}; run `make gen`", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
