"""The whole loopback stack the assistant agent and the UI talk to, as real processes:
predictor, transformer, explainer (a local model store of real tiny versions), the
knowledge role (a small real index in a local store), and optionally the collector that
the predictor logs to.

    with assist_stack(tmp_path) as stack:
        agent = Agent(stack.settings())
        report = agent.report(stack.shot())

`stack.settings(**overrides)` is a `UiSettings` pointing at every server (nothing read
from the environment but what the overrides leave); `stack.env()` is the same as
`CASTML_*` variables, for a subprocess (`castml assist`, `castml ui`). Every process is
stopped on exit, also when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from castml.cli.local_processes import ServerProcess, start_server
from castml.spec import load_spec
from tests.support.collector_process import TOKEN, CollectorProcess
from tests.support.ports import free_port
from tests.unit.serving.support import build_store, valid_record

PROJECT = "diecast"
KB_PROJECT = "diecast-kb"


def build_kb_store(root: Path) -> Path:
    """A local knowledge store `<root>/1/index` (+ `aliases.json`, @champion = 1), built from
    the small fixture corpus (English and Korean Markdown, HTML and a paged PDF: a few
    seconds). Built once per root; the marker says done."""
    from castml.knowledge.index_store import build_index_from_corpus, save_index
    from castml.knowledge.tokenizing import KnowledgeTokenizer
    from tests.unit.test_knowledge_parsing import write_fixture_corpus

    marker = root / ".built"
    if marker.is_file():
        return root
    corpus = write_fixture_corpus(root / "corpus")
    index = build_index_from_corpus(corpus, KnowledgeTokenizer())
    save_index(index, root / "store" / "1" / "index")
    (root / "store" / "aliases.json").write_text(json.dumps({"champion": "1"}))
    marker.touch()
    return root


def start_knowledge(kb_root: Path, home: Path) -> ServerProcess:
    """The knowledge role on a free port, serving @champion of `build_kb_store(kb_root)`."""
    env = {
        "CASTML_MODEL_STORE": str(build_kb_store(kb_root) / "store"),
        "CASTML_MODEL_VERSION": "champion",
        "CASTML_HOME": str(home),
    }
    return start_server("knowledge", env, home / "logs", project=KB_PROJECT)


def start_explainer(model_store: Path, predictor: ServerProcess, log_dir: Path) -> ServerProcess:
    env = {"CASTML_MODEL_STORE": str(model_store), "CASTML_MODEL_VERSION": "champion"}
    return start_server("explainer", env, log_dir, predictor=predictor)


@dataclass
class AssistStack:
    root: Path
    model_store: Path
    kb_root: Path
    predictor: ServerProcess
    transformer: ServerProcess
    explainer: ServerProcess
    knowledge: ServerProcess
    collector: CollectorProcess | None = None
    extra: list[ServerProcess] = field(default_factory=list)

    @property
    def collector_url(self) -> str:
        port = self.collector.port if self.collector else 9  # discard: nothing listens
        return f"http://127.0.0.1:{port}"

    @property
    def log_dir(self) -> Path:
        """Where the collector writes its Parquet log (`<project>/<version>/date=...`)."""
        return self.root / "collector-home" / "logs"

    def urls(self) -> dict[str, str]:
        return {
            "predictor_url": self.predictor.url,
            "transformer_url": self.transformer.url,
            "explainer_url": self.explainer.url,
            "knowledge_url": self.knowledge.url,
            "collector_url": self.collector_url,
        }

    def settings(self, **overrides: Any) -> Any:
        """A `ui.settings.UiSettings` for this stack (imported here: ui is a face)."""
        from ui.settings import UiSettings

        values: dict[str, Any] = {
            **self.urls(),
            "project": PROJECT,
            "home": self.root / "ui-home",
            "log_dir": self.log_dir,
            "step_timeout_s": 30.0,  # a loaded 2-core CI machine: generous, it never hangs
        }
        values.update(overrides)
        return UiSettings(**values)

    def env(self, **overrides: str) -> dict[str, str]:
        """The same settings as `CASTML_*` variables, for a subprocess."""
        values = {f"CASTML_{k.upper()}": v for k, v in self.urls().items()}
        values.update(
            CASTML_PROJECT=PROJECT,
            CASTML_HOME=str(self.root / "ui-home"),
            CASTML_LOG_DIR=str(self.log_dir),
            CASTML_STEP_TIMEOUT_S="30",
        )
        values.update({f"CASTML_{k.upper()}": v for k, v in overrides.items()})
        return values

    def shot(self, seed: int = 0) -> dict[str, float]:
        """A valid shot (inside the bounds), from the generator."""
        return valid_record(load_spec(PROJECT), seed)

    def wait_logged(self, rows: int, timeout_s: float = 30.0) -> None:
        """Until the collector has written at least `rows` rows of Parquet (with a collector)."""
        import pyarrow.parquet as pq

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            files = list((self.log_dir / PROJECT).rglob("*.parquet"))
            if sum(pq.ParquetFile(f).metadata.num_rows for f in files) >= rows:
                return
            time.sleep(0.1)
        raise AssertionError(f"the collector did not write {rows} rows in {timeout_s} s")

    def stop(self) -> None:
        for server in [*self.extra, self.knowledge, self.explainer, self.transformer]:
            server.stop()
        self.predictor.stop()
        if self.collector is not None:
            self.collector.stop()


def _prepare(root: Path, model_store: Path | None) -> tuple[Path, Path]:
    """The model store and the knowledge store, built side by side (both are mostly native
    code: training and embedding release the GIL)."""
    kb_root = root / "kb"
    with ThreadPoolExecutor(2) as pool:
        kb = pool.submit(build_kb_store, kb_root)
        store = model_store or build_store(root / "model-store")
        kb.result()
    return store, kb_root


@contextlib.contextmanager
def assist_stack(
    root: Path, *, collector: bool = False, model_store: Path | None = None
) -> Iterator[AssistStack]:
    """Start the stack under `root` (see the module doc); stop all of it on exit.

    `collector=True`: a real collector, and the predictor logs every request to it (for
    the UI's history tab). `model_store`: an already built `build_store` folder to reuse.
    The servers start in parallel (their ports are chosen first), which matters on a
    loaded 2-core machine.
    """
    root.mkdir(parents=True, exist_ok=True)
    store, kb_root = _prepare(root, model_store)
    logs = root / "server-logs"
    env = {"CASTML_MODEL_STORE": str(store), "CASTML_MODEL_VERSION": "champion"}
    collector_process = CollectorProcess(root / "collector-home") if collector else None
    if collector_process is not None:
        env = {
            **env,
            "CASTML_LOGGER_URL": f"http://127.0.0.1:{collector_process.port}/",
            "CASTML_LOGGER_TOKEN": TOKEN,
        }
    port = free_port()
    starts: dict[str, Callable[[], Any]] = {
        "predictor": lambda: start_server("predictor", env, logs, port=port),
        "transformer": lambda: start_server("transformer", env, logs, predictor_port=port),
        "explainer": lambda: start_server("explainer", env, logs, predictor_port=port),
        "knowledge": lambda: start_knowledge(kb_root, root / "kb-home"),
    }
    if collector_process is not None:
        starts["collector"] = collector_process.start
    started: dict[str, Any] = {}
    errors: list[BaseException] = []
    with ThreadPoolExecutor(len(starts)) as pool:
        futures = {name: pool.submit(start) for name, start in starts.items()}
        for name, future in futures.items():
            try:
                started[name] = future.result()
            except BaseException as exc:
                errors.append(exc)
    if errors:
        for part in started.values():
            part.stop()
        if collector_process is not None:
            collector_process.kill()
        raise errors[0]
    stack = AssistStack(
        root,
        store,
        kb_root,
        started["predictor"],
        started["transformer"],
        started["explainer"],
        started["knowledge"],
        collector_process,
    )
    try:
        yield stack
    finally:
        stack.stop()
