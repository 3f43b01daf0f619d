"""`python -m bench [name ...]`: run every `bench/<name>.py` that defines `main()`.

Each benchmark measures our code and its peer in the same run and prints ratios;
results also go to `bench/results/<name>.json` (not checked in).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def discover() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        p.stem for p in here.glob("*.py") if not p.stem.startswith("_") and p.stem != "common"
    )


def main(argv: list[str]) -> int:
    names = argv or discover()
    unknown = sorted(set(names) - set(discover()))
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)} (known: {', '.join(discover())})",
            file=sys.stderr,
        )
        return 2
    failed = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        if not hasattr(module, "main"):
            continue
        print(f"\n=== bench: {name} ===", flush=True)
        try:
            module.main()
        except Exception as exc:  # one broken peer must not hide the other results
            print(f"bench {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
