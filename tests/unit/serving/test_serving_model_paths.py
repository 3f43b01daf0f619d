"""The model's fast paths give the batch path's answers: single-row GBM, folded encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from castml.runtime.ae_gbm import AeGbmModel
from castml.spec import ProjectSpec
from tests.unit.serving.support import feature_rows


def test_direct_gbm_calls_match_booster_predict(model_store: Path, spec: ProjectSpec) -> None:
    model = AeGbmModel.load(model_store / "1" / "model")
    x = feature_rows(spec, 200, 5)
    design, _ = model.design_matrix(x)
    assert model.direct.accepts(design)  # the direct path is really in use
    expected = model.booster.predict(design, num_threads=1)
    single = np.concatenate([model.gbm(design[i : i + 1]) for i in range(len(x))])
    np.testing.assert_allclose(single, expected, rtol=0, atol=1e-12)
    for rows in (2, 7, 200):
        np.testing.assert_allclose(model.gbm(design[:rows]), expected[:rows], rtol=0, atol=1e-12)
    batch = model.predict(x)
    for i in range(0, len(x), 37):
        one = model.predict(x[i : i + 1])
        for name, values in one.items():
            np.testing.assert_allclose(values[0], batch[name][i], rtol=0, atol=1e-6)


def test_folded_encoder_matches_the_layer_by_layer_forward(
    model_store: Path, spec: ProjectSpec
) -> None:
    """The load-time folding is algebra only: a plain float64 forward agrees within 1e-6."""
    model = AeGbmModel.load(model_store / "1" / "model")
    w = {k: v.astype(np.float64) for k, v in model.encoder.w.items()}
    x = model.scale(feature_rows(spec, 300, 9)).astype(np.float64)

    def linear(h: np.ndarray, name: str) -> np.ndarray:
        return np.asarray(h @ w[f"{name}.weight"].T + w[f"{name}.bias"])

    tokens = x[:, :, None] * w["attention.embed_weight"] + w["attention.embed_bias"]
    mean, var = tokens.mean(-1, keepdims=True), tokens.var(-1, keepdims=True)
    normed = (tokens - mean) / np.sqrt(var + 1e-5) * w["attention.norm.weight"]
    qkv = linear(normed + w["attention.norm.bias"], "attention.qkv")
    n, f, d = tokens.shape
    heads = model.encoder.heads
    q, k, v = (
        part.reshape(n, f, heads, d // heads).transpose(0, 2, 1, 3)
        for part in np.split(qkv, 3, axis=-1)
    )
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d // heads)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    mixed = (weights @ v).transpose(0, 2, 1, 3).reshape(n, f, d)
    h = x + linear(tokens + linear(mixed, "attention.proj"), "attention.readout")[..., 0]
    for i in range(model.encoder.n_blocks):
        gate = linear(h, f"blocks.{i}.gate")
        h = gate / (1 + np.exp(-gate)) * linear(h, f"blocks.{i}.up")
    expected = linear(h, "to_latent")
    np.testing.assert_allclose(model.encoder(x.astype(np.float32)), expected, rtol=0, atol=1e-6)
