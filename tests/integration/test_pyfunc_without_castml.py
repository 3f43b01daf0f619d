"""The registered pyfunc loads with plain `mlflow.pyfunc.load_model` where castml is absent.

KServe's MLflow runtime (MLServer) loads models this way, so the model must carry
its own code (`code_paths`). The child process removes every path that could
provide castml, proves the import fails, then loads and predicts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from castml.data.diecast import generate
from castml.runtime.ae_gbm import AeGbmModel
from castml.spec import load_spec
from tests.conftest import REPO_ROOT, RegisteredProject

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
    print(json.dumps(out["probability"].tolist()))
    """
)


def test_registered_model_loads_where_castml_is_not_installed(
    registered_diecast: RegisteredProject, tmp_path: Path
) -> None:
    import mlflow.artifacts

    local = mlflow.artifacts.download_artifacts(
        artifact_uri=download_uri(registered_diecast),
        dst_path=str(tmp_path),
        tracking_uri=registered_diecast.uri,
    )
    rows = generate(8, seed=21).drop(columns=["defect"])
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO_ROOT), local, rows.to_json(orient="records")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    probabilities = np.array(json.loads(result.stdout.strip().splitlines()[-1]))
    expected = AeGbmModel.load(Path(local) / "artifacts" / "model").predict(
        rows[load_spec("diecast").feature_names].to_numpy(np.float32)
    )["probability"]
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)


def download_uri(project: RegisteredProject) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(project.uri, registry_uri=project.uri)
    return str(client.get_model_version_download_uri(project.project, str(project.versions[0])))
