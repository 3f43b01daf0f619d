"""Registry of synthetic data generators a spec can name (`source.kind: generator`)."""

from __future__ import annotations

import pandas as pd

from castml.errors import SpecError


def generate(name: str, rows: int, seed: int, scenario: str = "none") -> pd.DataFrame:
    if name == "diecast":
        from castml.data import diecast

        return diecast.generate(rows, seed, scenario)
    if name == "ctr":
        from castml.data import ctr_generator

        return ctr_generator.generate(rows, seed)
    raise SpecError(f"unknown generator '{name}' (known: diecast, ctr)")
