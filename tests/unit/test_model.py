"""The ae_gbm model on real, tiny data: numpy/torch parity, training, metrics, gates."""

from pathlib import Path

import numpy as np
import pytest
import torch

from castml.data.diecast import generate
from castml.models.autoencoder import AutoEncoder, Encoder
from castml.models.holdout_metrics import apply_gates, tune_threshold
from castml.models.train import BaselineModel, train
from castml.runtime.ae_gbm import AeGbmModel
from castml.runtime.encoder import NumpyEncoder
from castml.spec import Gates, load_spec

SPEC = load_spec("diecast")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    shots = generate(1500, seed=11)
    out = tmp_path_factory.mktemp("model")
    train(
        SPEC,
        shots.iloc[:1100],
        shots.iloc[1100:],
        out / "model",
        out / "baseline",
        SPEC.model.resolved("fast"),
    )
    return out / "model", out / "baseline"


def test_encoder_shape_follows_the_spec() -> None:
    p = SPEC.model.resolved()["autoencoder"]
    model = AutoEncoder(30, p["hidden"], p["latent"], p["token_dim"], p["heads"])
    widths = [(b.gate.in_features, b.gate.out_features) for b in model.encoder.blocks]
    assert widths == [(30, 64), (64, 32), (32, 16)]
    assert model.encoder.to_latent.out_features == 12
    assert model.encoder.attention.heads == 4
    z, recon, aux = model(torch.zeros(5, 30))
    assert z.shape == (5, 12) and recon.shape == (5, 30) and aux.shape == (5,)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numpy_encoder_matches_torch_within_1e_5(tmp_path: Path, seed: int) -> None:
    torch.manual_seed(seed)
    encoder = Encoder(30, [64, 32, 16], 12, 16, 4).eval()
    for parameter in encoder.parameters():  # leave the init regime: larger weights, larger errors
        parameter.data += 0.1 * torch.randn_like(parameter)
    encoder.export(tmp_path / "encoder.npz")
    x = np.random.default_rng(seed).normal(0, 1.5, (257, 30)).astype(np.float32)
    with torch.no_grad():
        expected = encoder(torch.from_numpy(x)).numpy()
    got = NumpyEncoder.load(tmp_path / "encoder.npz")(x)
    assert got.shape == (257, 12)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_trained_numpy_encoder_matches_trained_torch(trained: tuple[Path, Path]) -> None:
    model = AeGbmModel.load(trained[0])
    x = model.scale(generate(300, seed=12)[SPEC.feature_names].to_numpy(np.float32))
    weights = dict(np.load(trained[0] / "encoder.npz"))
    torch_encoder = Encoder(30, [64, 32, 16], 12, 16, 4)
    torch_encoder.load_state_dict(
        {k: torch.from_numpy(v) for k, v in weights.items() if not k.startswith("meta.")}
    )
    with torch.no_grad():
        expected = torch_encoder.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.encoder(x), expected, atol=1e-5, rtol=0)


def test_trained_model_predicts_probabilities_labels_and_latents(
    trained: tuple[Path, Path],
) -> None:
    model = AeGbmModel.load(trained[0])
    x = generate(64, seed=13)[SPEC.feature_names].to_numpy(np.float32)
    out = model.predict(x)
    assert out["probability"].dtype == np.float32 and out["probability"].shape == (64,)
    assert ((out["probability"] >= 0) & (out["probability"] <= 1)).all()
    assert out["label"].dtype == np.int64
    np.testing.assert_array_equal(
        out["label"], (out["probability"] >= model.manifest.threshold).astype(np.int64)
    )
    assert out["latent"].shape == (64, 12)
    # one row alone gives the same answer as inside a batch
    np.testing.assert_allclose(
        model.predict(x[:1])["probability"], out["probability"][:1], atol=1e-6
    )
    assert BaselineModel(trained[1]).score(x).shape == (64,)


def test_threshold_maximises_f1() -> None:
    y = np.array([0, 0, 0, 1, 1, 0, 1, 1])
    score = np.array([0.1, 0.2, 0.3, 0.35, 0.6, 0.65, 0.8, 0.9])
    best = tune_threshold(y, score)
    label = score >= best
    f1 = 2 * (label & (y == 1)).sum() / (label.sum() + y.sum())
    for cut in score:
        other = score >= cut
        assert f1 >= 2 * (other & (y == 1)).sum() / (other.sum() + y.sum()) - 1e-12


def test_gates_floor_regression_and_lower_is_better() -> None:
    gates = Gates(
        floors={"roc_auc": 0.8, "rmse": 10},
        max_regression={"roc_auc": 0.02, "rmse": 1},
        lower_is_better=["rmse"],
    )
    assert apply_gates({"roc_auc": 0.85, "rmse": 9}, None, gates).passed
    floor = apply_gates({"roc_auc": 0.75, "rmse": 9}, None, gates)
    assert not floor.passed and "roc_auc=0.7500 misses the floor 0.8" in floor.tag
    worse = apply_gates({"roc_auc": 0.85, "rmse": 9.5}, {"roc_auc": 0.9, "rmse": 8}, gates)
    assert not worse.passed
    assert (
        "regresses 0.0500 from champion" in worse.tag
        and "rmse=9.5000 regresses 1.5000" in worse.tag
    )
    within = apply_gates({"roc_auc": 0.89, "rmse": 8.5}, {"roc_auc": 0.9, "rmse": 8}, gates)
    assert within.passed and within.tag.startswith("passed")
    assert not apply_gates({"roc_auc": float("nan"), "rmse": 9}, None, gates).passed
