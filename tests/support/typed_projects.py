"""Typed projects for the model-family tests: Adult (the draft spec, real data) and a small
synthetic daily-sales regression with a time column, a text categorical and a log1p target.

The sales data is written as a CSV beside its spec, so the whole path (validate, time
split, train, register) runs from spec files alone, as a new user's project would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from tests.conftest import REPO_ROOT

ADULT_SPEC = REPO_ROOT / "castml" / "projects" / "drafts" / "adult.yaml"
STORES = ["north", "south", "east", "west", "mall"]
SALES_ROWS = 1500


def sales_frame(rows: int = SALES_ROWS, seed: int = 0) -> pd.DataFrame:
    """Daily sales per store: a store effect, temperature, promotions, and a slow trend."""
    rng = np.random.default_rng(seed)
    day = np.arange(rows)
    store = rng.choice(STORES, rows)
    temp = rng.uniform(-5, 35, rows).round(1)
    promo = rng.integers(0, 2, rows)
    level = {"north": 3.0, "south": 3.5, "east": 2.5, "west": 4.0, "mall": 4.5}
    log_sales = (
        np.vectorize(level.get)(store) + 0.02 * temp + 0.4 * promo + day / rows * 0.3
    ) + rng.normal(scale=0.1, size=rows)
    return pd.DataFrame(
        {
            "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(day, unit="h"),
            "store": store,
            "temp": temp,
            "promo": promo,
            "sales": np.expm1(log_sales).round(2),
            "row_id": day,
        }
    )


def write_sales_project(
    directory: Path, name: str, family: str, candidates: list[str] | None = None
) -> Path:
    """The sales CSV and a spec for it (`family`, or candidate families; time-ordered split);
    returns the spec path."""
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / f"{name}.csv"
    sales_frame().to_csv(data, index=False)
    spec: dict[str, Any] = {
        "name": name,
        "task": "regression",
        "target": "sales",
        "target_transform": "log1p",
        "source": {"kind": "csv", "path": str(data)},
        "time_column": "when",
        "ignore": ["row_id"],
        "features": [
            {"name": "store", "dtype": "categorical", "unknown": "other"},
            {"name": "temp", "bounds": [-40, 60], "missing": "impute"},
            {"name": "promo", "dtype": "bool"},
        ],
        "model": {
            "family": family,
            "params": {
                "gbm": {"n_estimators": 80, "max_depth": 4, "num_leaves": 15, "learning_rate": 0.1},
                "xgboost": {"n_estimators": 80, "max_depth": 4, "learning_rate": 0.1},
            },
            "profiles": {"fast": {"gbm": {"n_estimators": 60}, "xgboost": {"n_estimators": 60}}},
            "candidates": candidates or [],
        },
        "validation": {"min_rows": 500},
        "gates": {"floors": {"r2": 0.5}, "lower_is_better": ["rmse", "mae"]},
        "monitoring": {"reference_rows": 300, "background_rows": 50},
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def adult_raw_rows() -> pd.DataFrame:
    """Rows as the file holds them: text categoricals, ints, and missing values ('?')."""
    from castml.data.loaders import load_dataset
    from castml.spec import load_spec

    spec = load_spec(ADULT_SPEC)
    raw = load_dataset(spec)[spec.feature_names]
    missing = raw[raw["workclass"].isna() | raw["native_country"].isna()].head(2)
    return pd.concat([raw.head(6), missing], ignore_index=True)


# Adult's text features (the others are whole numbers).
ADULT_TEXT = frozenset(
    {"workclass", "education", "marital_status", "occupation", "relationship", "race"}
    | {"sex", "native_country"}
)


def adult_v2_inputs(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """One tensor per feature: BYTES (null for missing) for text, INT64 for the ints."""
    inputs = []
    for name in rows.columns:
        column = rows[name]
        if name in ADULT_TEXT:
            data = [None if pd.isna(v) else str(v) for v in column]
            inputs.append({"name": name, "datatype": "BYTES", "shape": [len(rows)], "data": data})
        else:
            data = column.astype("int64").tolist()
            inputs.append({"name": name, "datatype": "INT64", "shape": [len(rows)], "data": data})
    return inputs


def grpc_infer(port: int, model: str, inputs: list[dict[str, Any]], request_id: str = "") -> Any:
    """The v2 gRPC ModelInfer of per-feature tensors (BYTES: an empty string for null)."""
    import grpc

    from serving.v2_proto import SERVICE, load_pb2

    pb2 = load_pb2()
    request = pb2.ModelInferRequest(model_name=model, id=request_id)
    for tensor in inputs:
        entry = request.inputs.add(
            name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"]
        )
        if tensor["datatype"] == "BYTES":
            entry.contents.bytes_contents.extend((v or "").encode() for v in tensor["data"])
        else:
            entry.contents.int64_contents.extend(tensor["data"])
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = channel.unary_unary(
            f"/{SERVICE}/ModelInfer",
            request_serializer=pb2.ModelInferRequest.SerializeToString,
            response_deserializer=pb2.ModelInferResponse.FromString,
        )
        return stub(request, timeout=30)
