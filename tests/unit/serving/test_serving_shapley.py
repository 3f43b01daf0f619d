"""The SHAP estimator: local accuracy on the real model, exactness on additive models."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from castml.runtime.ae_gbm import AeGbmModel
from castml.shapley import shapley
from castml.spec import ProjectSpec
from tests.unit.serving.support import feature_rows


def test_local_accuracy_on_the_served_model(model_store: Path, spec: ProjectSpec) -> None:
    model = AeGbmModel.load(model_store / "1" / "model")
    background = np.load(model_store / "1" / "background.npy")
    expected_base = float(model.score(background).mean())
    for row in feature_rows(spec, 2, 77):
        for permutations in (2, 3):
            result = shapley(model.score, row, background, permutations, seed=permutations)
            fx = float(model.score(row[None, :])[0])
            assert abs(result.phi.sum() - (fx - expected_base)) < 1e-6
            assert abs(result.base_value - expected_base) < 1e-9
            assert abs(result.prediction - fx) < 1e-9
            assert result.phi.shape == (30,)


def test_additive_model_gets_its_exact_shapley_values() -> None:
    rng = np.random.default_rng(3)
    weights = rng.normal(size=6)
    background = rng.normal(size=(20, 6)).astype(np.float32)
    x = rng.normal(size=6).astype(np.float32)

    def additive(z: np.ndarray) -> np.ndarray:
        return np.asarray(z.astype(np.float64) @ weights + np.sin(z[:, 0].astype(np.float64)))

    result = shapley(additive, x, background, permutations=2)
    exact = (x - background.mean(axis=0)) * weights
    exact[0] += np.sin(float(x[0])) - np.sin(background[:, 0].astype(np.float64)).mean()
    np.testing.assert_allclose(result.phi, exact, atol=1e-5)


def test_irrelevant_feature_gets_zero() -> None:
    rng = np.random.default_rng(4)
    background = rng.normal(size=(10, 4)).astype(np.float32)

    def f(z: np.ndarray) -> np.ndarray:
        return np.asarray(z[:, 0].astype(np.float64) * z[:, 1])

    result = shapley(f, rng.normal(size=4).astype(np.float32), background, permutations=4)
    assert result.phi[2] == 0.0 and result.phi[3] == 0.0
