"""Reports: importance (random forest, SHAP, LIME; p-values; bootstrap CIs), correlation, the
AI report ("no usable signal" on Open Bandit), the PDF rendered by poppler."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from studio.reports.importance import METHODS, importance
from studio.reports.table import build_table
from tests.integration.studio.conftest import Studio, Trained

pytestmark = pytest.mark.integration


def _known_signal() -> tuple[pd.DataFrame, dict]:
    """`ad_relevance` drives clicks (log-odds +2.5 per unit); the rest is noise."""
    rng = np.random.default_rng(7)
    n = 2500
    frame = pd.DataFrame(
        {
            "ad_relevance": rng.normal(size=n),
            "noise_a": rng.normal(size=n),
            "noise_b": rng.uniform(size=n),
            "noise_cat": rng.choice(["x", "y", "z"], n),
        }
    )
    odds = 2.5 * frame["ad_relevance"] - 3.0
    frame["click"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-odds))).astype(int)
    spec = {
        "target": "click",
        "features": [
            {"name": "ad_relevance", "dtype": "float"},
            {"name": "noise_a", "dtype": "float"},
            {"name": "noise_b", "dtype": "float"},
            {"name": "noise_cat", "dtype": "categorical"},
        ],
    }
    return frame, spec


@pytest.mark.parametrize("method", METHODS)
def test_each_method_ranks_the_known_effect_first(method: str) -> None:
    frame, spec = _known_signal()
    rows = importance(build_table(frame, spec), method)
    assert rows[0]["feature"] == "ad_relevance"
    assert rows[0]["ci"][0] > max(r["ci"][1] for r in rows[1:])  # CIs apart
    assert rows[0]["pValue"] < 1e-6
    assert all(r["pValue"] > 0.01 for r in rows[1:])  # noise is not called an effect
    assert all(r["ci"][0] <= r["importance"] <= r["ci"][1] for r in rows)
    assert sum(r["importance"] for r in rows) == pytest.approx(1.0, abs=1e-3)


def test_importance_endpoint_per_method(studio: Studio, trained: Trained) -> None:
    names = None
    for method in ("rf", "combined"):
        rows = httpx.get(
            f"{studio.url}/api/report/feature-importance/{trained.run_id}",
            params={"method": method},
            timeout=300,
        ).json()
        assert {"feature", "importance", "pValue", "ci", "description"} <= set(rows[0])
        assert rows[0]["method"] == method
        names = names or {r["feature"] for r in rows}
        assert {r["feature"] for r in rows} == names
    bad = httpx.get(
        f"{studio.url}/api/report/feature-importance/{trained.run_id}", params={"method": "x"}
    )
    assert bad.status_code == 422 and "rf, shap, lime, combined" in bad.json()["error"]


def test_correlation_matrix(studio: Studio, trained: Trained) -> None:
    answer = httpx.get(f"{studio.url}/api/report/correlation/{trained.run_id}", timeout=120)
    body = answer.json()
    size = len(body["features"])
    assert body["features"][-1] == "click" and size >= 3
    matrix = np.asarray(body["matrix"])
    assert matrix.shape == (size, size)
    assert np.allclose(np.diag(matrix), 1.0) and np.allclose(matrix, matrix.T)


def test_the_ai_report_says_no_usable_signal_on_open_bandit(
    studio: Studio, trained: Trained
) -> None:
    report = httpx.get(f"{studio.url}/api/report/ai/{trained.run_id}", timeout=300).json()
    for key in ("summary", "accuracy", "roiIncrease", "additionalRevenue", "topFeatures"):
        assert key in report
    low, high = report["aucCi"]
    assumptions = report["assumptions"]
    few = assumptions["holdoutClicks"] < assumptions["minHoldoutClicks"]
    assert report["noSignal"] is True and (low <= 0.5 <= high or few)
    assert "No usable signal" in report["summary"]
    assert report["roiIncrease"] == 0 and report["additionalRevenue"] == 0
    assert report["aiInsights"][0].startswith("no usable signal")
    assert report["assumptions"]["impressionsPerMonth"] > 0 and report["formulas"]["roiIncrease"]


def _evaluation(auc_ci: tuple[float, float], clicks: int) -> tuple[dict, dict]:
    """A holdout of 2000 impressions with `clicks` clicks; ROC through (0.1, 0.5)."""
    metrics = {"roc_auc": 0.75, "accuracy": 0.9, "roc_auc_ci_low": auc_ci[0]}
    metrics["roc_auc_ci_high"] = auc_ci[1]
    negatives = 2000 - clicks
    evaluation = {
        "confusion_matrix": [[negatives, 0], [0, clicks]],
        "roc": {"fpr": [0.0, 0.1, 1.0], "tpr": [0.0, 0.5, 1.0]},
    }
    return metrics, evaluation


def test_the_ai_report_states_its_formulas_and_refuses_thin_evidence() -> None:
    from studio.reports.ai_report import compose
    from studio.settings import StudioSettings

    settings = StudioSettings(studio_targeted_share=0.1, studio_impressions_per_month=1e6)
    top = [{"feature": "f", "importance": 1.0, "pValue": 0.001, "ci": [0.9, 1.0]}]
    base = 0.05
    signal = compose(*_evaluation((0.70, 0.80), 100), top, base, settings)
    assert signal["noSignal"] is False
    # the ROC's point (0.1, 0.5) reaches 0.05 * 0.5 + 0.95 * 0.1 = 12 % of impressions: at a
    # 10 % share, interpolated, TPR 0.417 and a lift of 4.17x
    expected_tpr = float(np.interp(0.1, [0, 0.05 * 0.5 + 0.95 * 0.1, 1], [0, 0.5, 1]))
    assert signal["roiIncrease"] == pytest.approx((expected_tpr / 0.1 - 1) * 100, abs=0.01)
    revenue = 1e6 * 0.1 * base * (expected_tpr / 0.1 - 1) * settings.studio_revenue_per_click
    assert signal["additionalRevenue"] == pytest.approx(revenue, abs=0.01)
    chance = compose(*_evaluation((0.45, 0.60), 100), top, base, settings)
    assert chance["noSignal"] is True and "includes 0.5" in chance["summary"]
    assert chance["roiIncrease"] == 0 and chance["aiInsights"][0].startswith("no usable")
    thin = compose(*_evaluation((0.70, 0.80), 6), top, base, settings)
    assert thin["noSignal"] is True and "only 6 click(s)" in thin["summary"]


def test_the_pdf_renders_with_charts_and_korean(
    studio: Studio, trained: Trained, tmp_path: Path
) -> None:
    made = httpx.post(
        f"{studio.url}/api/report/generate-pdf/{trained.run_id}",
        json={"includeCharts": True, "includeInsights": True, "includeActionPlan": True},
        headers=studio.auth,
        timeout=300,
    )
    assert made.status_code == 200, made.text
    assert made.json() == {"pdf_url": f"/api/report/pdf/{trained.run_id}", "status": "completed"}
    pdf = httpx.get(studio.url + made.json()["pdf_url"])
    assert pdf.headers["content-type"] == "application/pdf"
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf.content)
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True)
    nanum = [line for line in fonts.stdout.splitlines() if "NanumGothic" in line]
    assert nanum and " yes " in nanum[0]  # embedded
    text = subprocess.run(
        ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "요약" in text and "실행 계획" in text and "신호 없음" in text
    assert "No usable signal" in text
    images = subprocess.run(
        ["pdfimages", "-list", str(path)], capture_output=True, text=True, check=True
    ).stdout
    charts = [line for line in images.splitlines()[2:] if line.split()[2] == "image"]
    assert len(charts) == 2  # importance and correlation
    subprocess.run(["pdftoppm", "-png", "-r", "50", str(path), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert pages
    from PIL import Image

    colourful = 0
    for page in pages:
        pixels = np.asarray(Image.open(page).convert("RGB")).astype(int)
        spread = pixels.max(axis=2) - pixels.min(axis=2)
        colourful += int((spread > 60).sum())  # chart colours, not black text on white
    assert colourful > 500


def test_a_missing_font_is_a_clear_error(tmp_path: Path) -> None:
    from studio.reports.pdf import FontMissingError, render

    report = {"summary": "s", "roiIncrease": 0.0, "additionalRevenue": 0.0, "aiInsights": []}
    with pytest.raises(FontMissingError, match="fonts-nanum"):
        render(
            tmp_path / "r.pdf",
            "t",
            report | {"actionPlan": [], "formulas": {}},
            {},
            {},
            font=tmp_path / "none.ttf",
        )
    assert not (tmp_path / "r.pdf").exists()
