"""The web UI in a real headless Chromium (Debian's, through /usr/bin/chromedriver; nothing is
downloaded), against the real loopback platform: predictor, transformer, explainer, the
knowledge role and the collector (tests.support.assist_stack), and `castml ui` itself.

A Korean browser gets the Korean UI; the test fills the form (a word in a number field is
refused inline, naming the field), predicts, opens the analysis, asks the assistant in
Korean and gets a cited answer, sends traffic and sees the history chart, and saves a
screenshot of each tab under its tmp_path.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from castml.mlflow_server import port_in_use
from tests.support.assist_stack import AssistStack
from tests.support.ports import free_port
from tests.support.ui_registry import register_listed_versions

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 60  # a loaded 2-core machine: Streamlit reruns, SHAP and retrieval take seconds


@dataclass
class RunningUi:
    url: str
    stack: AssistStack
    log: Path


@pytest.fixture(scope="module")
def running_ui(
    ui_platform: AssistStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningUi]:
    """`castml ui` as a process, configured like any deployment: by CASTML_* variables."""
    port = free_port()
    root = tmp_path_factory.mktemp("ui-process")
    register_listed_versions(f"sqlite:///{root / 'mlflow.db'}")
    env = {
        **os.environ,
        **ui_platform.env(),
        # MLflow as a real SQLite store: the Models tab and the drift run read it.
        "CASTML_MLFLOW_URI": f"sqlite:///{root / 'mlflow.db'}",
        "CASTML_LANGUAGE": "en",  # the browser's Accept-Language must be what picks Korean
    }
    log = root / "ui.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "castml.cli.main", "ui", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"castml ui exited:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"castml ui did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield RunningUi(url, ui_platform, log)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        # `castml ui` execs Streamlit: stopping it stops the server, no orphan keeps the port.
        assert not port_in_use("127.0.0.1", port), "the UI server outlived `castml ui`"


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.fail("Debian's chromium and chromium-driver are required (apt, as make test does)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)  # the system browser: selenium-manager stays idle
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--lang=ko-KR"):
        options.add_argument(flag)
    options.add_argument("--window-size=1400,3400")  # tall: a tab fits one screenshot
    options.add_experimental_option("prefs", {"intl.accept_languages": "ko-KR,ko,en-US;q=0.5"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def answered_rows(log_dir: Path) -> int:
    """Answered predictions in the collector's Parquet (every version folder, today's and
    earlier partitions), read without the UI's code."""
    import pyarrow.parquet as pq

    total = 0
    for path in (log_dir / "diecast").glob("*/date=*/*.parquet"):
        if path.parts[-3] not in ("feedback", "orphans"):
            column = pq.read_table(path, columns=["probability"]).column("probability")
            total += len(column) - column.null_count
    return total


class Page:
    """The few things the test does to a Streamlit page, by what a user sees."""

    def __init__(self, driver: object, shots: Path) -> None:
        from selenium.webdriver.remote.webdriver import WebDriver

        assert isinstance(driver, WebDriver)
        self.driver = driver
        self.shots = shots

    def text(self) -> str:
        return str(self.driver.execute_script("return document.body.innerText"))

    def wait_text(self, *needles: str, timeout: float = WAIT_S) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if all(n in text for n in needles):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"page never showed {needles!r}; it shows:\n{text[-3000:]}")
            time.sleep(0.25)

    def idle(self) -> None:
        """Until Streamlit's script run is over (its status widget gone)."""
        deadline = time.monotonic() + WAIT_S
        time.sleep(0.3)
        while self.driver.find_elements("css selector", '[data-testid="stStatusWidget"]'):
            if time.monotonic() > deadline:
                raise AssertionError("the app kept running")
            time.sleep(0.2)

    def tab(self, label: str) -> None:
        for tab in self.driver.find_elements("css selector", '[role="tab"]'):
            if tab.text.strip() == label:
                tab.click()
                self.idle()
                return
        raise AssertionError(f"no tab {label!r}")

    def button(self, label: str) -> None:
        for button in self.driver.find_elements("css selector", "button"):
            if button.is_displayed() and button.text.strip() == label:
                button.click()
                self.idle()
                return
        raise AssertionError(f"no visible button {label!r}")

    def type_into(self, aria_label: str, text: str) -> None:
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.wait import WebDriverWait

        field = WebDriverWait(self.driver, WAIT_S).until(
            expected_conditions.element_to_be_clickable(
                ("css selector", f'input[aria-label="{aria_label}"]')
            )
        )
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(text, Keys.ENTER)
        self.idle()

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        assert path.stat().st_size > 10_000, f"{name}.png is blank"
        return path


def test_the_ui_end_to_end_in_korean(
    running_ui: RunningUi, browser: object, tmp_path: Path
) -> None:
    page = Page(browser, tmp_path)
    page.driver.get(running_ui.url)
    text = page.wait_text("다이캐스팅 품질 예측", "공정 변수", "센서 값")
    for label in ("예측", "분석", "상담", "이력", "모델"):
        assert label in text
    assert "서버 연결 실패" not in text  # every server is up

    # Fill the form: a word in a number field is refused inline, naming the field.
    page.type_into("Process_Temperature (degC)", "뜨거움")
    page.wait_text("Process_Temperature: 숫자가 아닙니다")
    page.button("예측하기")
    page.wait_text("보낼 수 없습니다", "Process_Temperature")
    page.type_into("Process_Temperature (degC)", "702")
    page.type_into("Sensor_HydrogenContent (mL/100g)", "0.4")
    page.wait_text("정상 범위 밖: Process_Temperature, Sensor_HydrogenContent")
    page.button("예측하기")
    text = page.wait_text("예측 결과", "판정", "불량 확률", "모델 버전", "diecast/1")
    assert "양품 (ok)" in text or "불량 (defect)" in text
    assert page.driver.find_elements("css selector", ".js-plotly-plot")  # the gauge
    page.screenshot("predict")

    page.tab("분석")
    page.button("SHAP 분석 실행")
    text = page.wait_text("상위 10개 특징", "해석", "불량 확률")
    assert "Process_Temperature" in text or "Sensor_HydrogenContent" in text
    page.screenshot("analysis")

    page.tab("상담")
    page.wait_text("현재 샷을 맥락으로 사용합니다")
    box = page.driver.find_element("css selector", 'textarea[data-testid="stChatInputTextArea"]')
    box.send_keys("가스 기공의 원인은 무엇인가요?\n")
    page.idle()
    text = page.wait_text("출처", "[1]")
    assert "§" in text or "p." in text  # a citation names its section or page
    page.screenshot("assistant")

    # Traffic through the real transformer; the predictor logs it to the collector.
    stack = running_ui.stack
    before = answered_rows(stack.log_dir)
    with httpx.Client(timeout=30) as client:
        for seed in range(12):
            answer = client.post(
                f"{stack.transformer.url}/v1/models/diecast:predict",
                json={"features": stack.shot(seed)},
            )
            assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + WAIT_S
    while (logged := answered_rows(stack.log_dir)) < before + 12:
        assert time.monotonic() < deadline, f"the collector logged {logged - before} of 12"
        time.sleep(0.2)
    # The page counts exactly what the log holds (its reads are cached for a few seconds).
    shown = -1
    while shown != (logged := answered_rows(stack.log_dir)):
        assert time.monotonic() < deadline + WAIT_S, f"the page shows {shown}, the log {logged}"
        page.driver.refresh()
        page.wait_text("다이캐스팅 품질 예측")
        page.tab("이력")
        text = page.wait_text("시간별 예측", "시간대별 불량률", "일별 불량률", "버전별 요약")
        shown = int(re.findall(r"예측 (\d+)건", text)[0])
    assert page.driver.find_elements("css selector", ".js-plotly-plot")
    page.screenshot("history")

    page.tab("모델")
    text = page.wait_text("등록된 버전", "@champion", "passed: auc 0.91", "source=generator")
    assert "MLflow ↗" in text
    page.screenshot("models")
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "analysis.png",
        "assistant.png",
        "history.png",
        "models.png",
        "predict.png",
    ]
