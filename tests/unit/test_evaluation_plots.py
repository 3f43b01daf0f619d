"""The evaluation's plots: real matplotlib PNGs, real shap values, real scikit-learn models."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from sklearn.linear_model import LinearRegression, LogisticRegression

from castml import evaluation_plots as ep
from castml.evaluation import Evaluation, render_report
from castml.evaluation_plots import Scored
from castml.models.holdout_metrics import GateVerdict
from castml.spec import load_spec

CHAMPION_BLUE = (0x1F / 255, 0x77 / 255, 0xB4 / 255)
CANDIDATE_RED = (0xD6 / 255, 0x27 / 255, 0x28 / 255)


def _pixels(png: bytes) -> np.ndarray:
    """`[height, width, 3]` floats in [0, 1]; fails on anything that is not a PNG."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return np.asarray(imread(io.BytesIO(png), format="png"))[..., :3]


def _has_colour(png: bytes, rgb: tuple[float, float, float]) -> bool:
    return bool((np.abs(_pixels(png) - np.array(rgb)).max(axis=-1) < 0.02).any())


def _on_white(rgb: tuple[float, float, float], alpha: float) -> tuple[float, float, float]:
    red, green, blue = (alpha * c + (1 - alpha) for c in rgb)
    return red, green, blue


def _classifier_scores(with_champion: bool) -> tuple[np.ndarray, list[Scored]]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.8, size=400) > 0).astype(float)
    fitted = LogisticRegression().fit(x[:200], y[:200])
    holdout, y_holdout = x[200:], y[200:]
    scored = [
        Scored("candidate", "candidate", fitted.predict_proba(holdout)[:, 1], 0.5),
        Scored("baseline", "baseline", 1 / (1 + np.exp(-holdout[:, 0])), 0.4),
    ]
    if with_champion:
        scored.insert(1, Scored("champion", "@champion v1", rng.uniform(size=200), 0.5))
    return y_holdout, scored


@pytest.mark.parametrize("with_champion", [True, False])
def test_classification_plots_are_png_of_the_size_with_the_champion_only_when_there_is_one(
    with_champion: bool,
) -> None:
    y, scored = _classifier_scores(with_champion)
    plots = ep.classification_plots(y, scored, ("ok", "defect"))
    assert tuple(plots) == ep.CLASSIFICATION_PLOTS
    for name in ("roc", "precision_recall", "calibration"):
        pixels = _pixels(plots[name])
        assert pixels.shape[:2] == (ep.PNG_SIZE[1], ep.PNG_SIZE[0]), name
        assert _has_colour(plots[name], CANDIDATE_RED), name
        assert _has_colour(plots[name], CHAMPION_BLUE) is with_champion, name
    assert _pixels(plots["confusion_matrix"]).shape[:2] == (ep.PNG_SIZE[1], ep.PNG_SIZE[0])


def test_regression_yields_its_two_plots_and_no_curve_of_a_classifier() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 3))
    y = x @ np.array([2.0, -1.0, 0.5]) + rng.normal(scale=0.3, size=300)
    fitted = LinearRegression().fit(x[:150], y[:150])
    scored = [
        Scored("candidate", "candidate", fitted.predict(x[150:]), 0.0),
        Scored("baseline", "baseline", np.full(150, y[:150].mean()), 0.0),
    ]
    plots = ep.regression_plots(y[150:], scored)
    assert tuple(plots) == ep.REGRESSION_PLOTS
    for png in plots.values():
        assert _pixels(png).shape[:2] == (ep.PNG_SIZE[1], ep.PNG_SIZE[0])
        assert _has_colour(png, _on_white(CANDIDATE_RED, ep.SCATTER_ALPHA))
        assert not _has_colour(png, _on_white(CHAMPION_BLUE, ep.SCATTER_ALPHA))


def test_shap_values_of_a_linear_score_are_its_exact_attributions() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(120, 5)).astype(np.float32)
    weights = np.array([3.0, -2.0, 0.0, 0.5, 1.0])

    def score(rows: np.ndarray) -> np.ndarray:
        assert rows.dtype == np.float32  # the model gets its own dtype back
        return np.asarray(rows.astype(np.float64) @ weights)

    values, rows = ep.shap_values(score, x, seed=1, rows=30, background_rows=20)
    assert values.shape == rows.shape == (30, 5)
    background = x[np.random.default_rng(1).permutation(120)[:20]]
    # For a linear model with an independent masker, SHAP is w_j (x_j - E[x_j]).
    expected = weights * (rows.astype(np.float64) - background.mean(axis=0))
    np.testing.assert_allclose(values, expected, atol=1e-5)


def test_shap_values_over_raw_text_categories_and_missing_values() -> None:
    rng = np.random.default_rng(2)
    colour = rng.choice(np.array(["red", "blue", None], dtype=object), size=80)
    size = rng.normal(size=80)
    raw = np.empty((80, 2), dtype=object)
    raw[:, 0], raw[:, 1] = colour, size

    def score(rows: np.ndarray) -> np.ndarray:
        assert rows.dtype == object
        return np.asarray(2.0 * (rows[:, 0] == "red") + rows[:, 1].astype(np.float64))

    values, rows = ep.shap_values(score, raw, seed=4, rows=25, background_rows=30)
    background = raw[np.random.default_rng(4).permutation(80)[:30]]
    red_share = float(np.mean(background[:, 0] == "red"))
    np.testing.assert_allclose(values[:, 0], 2.0 * ((rows[:, 0] == "red") - red_share), atol=1e-9)
    expected_size = rows[:, 1].astype(float) - background[:, 1].astype(float).mean()
    np.testing.assert_allclose(values[:, 1], expected_size, atol=1e-9)
    png = ep.shap_summary_plot(values, rows, ["colour", "size"])
    assert _pixels(png).shape[:2] == (ep.PNG_SIZE[1], ep.PNG_SIZE[0])


def _evaluation(plots: dict[str, bytes]) -> Evaluation:
    return Evaluation(
        task="binary_classification",
        test_rows=200,
        candidate={"f1": 0.8},
        baseline={"f1": 0.7},
        champion=None,
        champion_version=None,
        champion_note="no champion yet",
        gate=GateVerdict(True, []),
        threshold=0.5,
        confusion_matrix=[[90, 10], [20, 80]],
        roc=None,
        plots=plots,
        plot_seconds={"curves": 0.5, "shap_summary": 2.0},
    )


def test_report_embeds_every_plot_and_registration_reads_them_back(tmp_path: Path) -> None:
    y, scored = _classifier_scores(with_champion=False)
    plots = ep.classification_plots(y, scored, ("ok", "defect"))
    report = render_report(load_spec("diecast"), _evaluation(plots), "abc")
    assert report.count('<img data-plot="') == len(ep.CLASSIFICATION_PLOTS)
    assert 'data-plot="shap_summary"' not in report
    assert ep.plots_from_html(report) == plots
    written = ep.write_pngs(ep.plots_from_html(report), tmp_path / "plots")
    assert sorted(p.name for p in written) == sorted(f"{n}.png" for n in plots)
    assert (tmp_path / "plots" / "roc.png").read_bytes() == plots["roc"]


def test_evaluation_json_keeps_its_shape_without_the_plots() -> None:
    evaluation = _evaluation({"roc": b"\x89PNG"})
    raw = evaluation.to_json()
    assert "plots" not in raw and "plot_seconds" not in raw
    assert Evaluation.from_json(raw) == evaluation  # plots are not part of equality
    assert Evaluation.from_json(raw).plots == {}


def test_a_report_without_plots_has_no_plot_section() -> None:
    report = render_report(load_spec("diecast"), _evaluation({}), "abc")
    assert "<img" not in report and ep.plots_from_html(report) == {}
