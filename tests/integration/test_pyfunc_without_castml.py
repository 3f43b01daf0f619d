"""The registered pyfunc loads with plain `mlflow.pyfunc.load_model` where castml is absent.

KServe's MLflow runtime (MLServer) loads models this way, so the model must carry
its own code (`code_paths`). The child process removes every path that could
provide castml, proves the import fails, then loads and predicts: once per family
(ae_gbm on float columns; gbm and xgboost on raw typed rows, encoded inside the pyfunc).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from castml.data.diecast import generate
from castml.data.tabular_encoding import frame_columns
from castml.runtime.ae_gbm import AeGbmModel
from castml.runtime.loaded_model import load_model
from castml.runtime.model_bundle import read_encoding
from castml.spec import load_spec
from tests.conftest import REPO_ROOT, RegisteredProject
from tests.integration.conftest import RegisteredTyped
from tests.support.typed_projects import adult_raw_rows, sales_frame

pytestmark = pytest.mark.integration

CHILD = textwrap.dedent(
    """
    import importlib.util, json, sys
    repo = sys.argv[1]
    sys.path[:] = [p for p in sys.path if p not in ("", ".", repo)]
    for finder in list(sys.meta_path):  # the editable install's finder maps castml -> the repo
        if "editable" in type(finder).__module__ or "__editable__" in repr(finder):
            sys.meta_path.remove(finder)
    assert importlib.util.find_spec("castml") is None, "castml is still importable"
    import mlflow, pandas as pd
    model = mlflow.pyfunc.load_model(sys.argv[2])
    rows = pd.DataFrame(json.loads(sys.argv[3]))
    out = model.predict(rows)
    print(out.to_json(orient="columns"))
    """
)


def test_registered_model_loads_where_castml_is_not_installed(
    registered_diecast: RegisteredProject, tmp_path: Path
) -> None:
    local = download(
        registered_diecast.uri, registered_diecast.project, registered_diecast.versions[0], tmp_path
    )
    rows = generate(8, seed=21).drop(columns=["defect"])
    probabilities = np.array(predict_without_castml(local, rows, tmp_path)["probability"])
    expected = AeGbmModel.load(Path(local) / "artifacts" / "model").predict(
        rows[load_spec("diecast").feature_names].to_numpy(np.float32)
    )["probability"]
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)


def test_gbm_pyfunc_encodes_raw_text_rows_where_castml_is_not_installed(
    registered_adult: RegisteredTyped, tmp_path: Path
) -> None:
    local = download(
        registered_adult.uri, registered_adult.project, registered_adult.version, tmp_path
    )
    rows = adult_raw_rows()  # text categoricals and missing values, as the file holds them
    out = predict_without_castml(local, rows, tmp_path)
    expected = _expected(Path(local) / "artifacts" / "model", rows)
    np.testing.assert_allclose(np.array(out["probability"]), expected["probability"], rtol=1e-6)
    np.testing.assert_array_equal(np.array(out["label"]), expected["label"])


def test_xgboost_pyfunc_encodes_raw_rows_where_castml_is_not_installed(
    registered_sales_xgboost: RegisteredTyped, tmp_path: Path
) -> None:
    local = download(
        registered_sales_xgboost.uri,
        registered_sales_xgboost.project,
        registered_sales_xgboost.version,
        tmp_path,
    )
    rows = sales_frame(6, seed=5)[["store", "temp", "promo"]].astype({"promo": bool})
    rows.loc[1, "temp"] = None  # imputed
    out = predict_without_castml(local, rows, tmp_path)
    expected = _expected(Path(local) / "artifacts" / "model", rows)
    assert set(out) == {"prediction"}
    np.testing.assert_allclose(np.array(out["prediction"]), expected["prediction"], rtol=1e-6)
    assert (expected["prediction"] > 1).all()  # on the sales scale, not log1p's


def _expected(model_dir: Path, rows: pd.DataFrame) -> dict[str, np.ndarray]:
    encoding = read_encoding(model_dir)
    x = encoding.encode(frame_columns(rows, encoding.names), np.float32)
    return load_model(model_dir).predict(x)


def predict_without_castml(local: str, rows: pd.DataFrame, cwd: Path) -> dict[str, list[Any]]:
    """The pyfunc's output columns, from a child process where castml cannot be imported."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO_ROOT), local, rows.to_json(orient="records")],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    columns = json.loads(result.stdout.strip().splitlines()[-1])
    return {name: [values[k] for k in sorted(values, key=int)] for name, values in columns.items()}


def download(uri: str, project: str, version: int, dest: Path) -> str:
    import mlflow.artifacts
    from mlflow import MlflowClient

    client = MlflowClient(uri, registry_uri=uri)
    source = str(client.get_model_version_download_uri(project, str(version)))
    return str(
        mlflow.artifacts.download_artifacts(
            artifact_uri=source, dst_path=str(dest), tracking_uri=uri
        )
    )
