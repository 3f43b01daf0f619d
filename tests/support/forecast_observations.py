"""Real bikeshare hours as observation bodies (`POST /v1/observations`) and as Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from monitoring.observation_ingest import observation_schema, parse_rows, write_observations

COLUMNS = ("count", "tmin", "tmax", "pn")


def observation_rows(frame: pd.DataFrame, start: str, hours: int) -> list[dict[str, Any]]:
    """`hours` real rows from `start` on, as the ingest endpoint takes them."""
    part = frame[frame.ts >= start].head(hours)
    rows = []
    for ts, *values in part[["ts", *COLUMNS]].itertuples(index=False):
        rows.append(
            {"ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), **dict(zip(COLUMNS, values, strict=True))}
        )
    return rows


def write_series(logs: Path, rows: list[dict[str, Any]], series: str) -> None:
    """Rows of one series straight to the observation Parquet, through the ingest's own code."""
    schema = observation_schema("bikeshare")
    columns = parse_rows({"observations": rows}, schema, series)
    write_observations(logs, schema, columns)
