"""The knowledge role (T3): a cited answer from the `<project>-kb` index version it is pinned to.

Routes (the model name is `<project>-kb`, e.g. `diecast-kb`):

- `POST /v1/models/<name>:predict` with `{"query", "context"?, "language"?, "filters"?}`
  (serving.knowledge_request) answers `{"answer", "sources": [{"document", "page" or
  "section", "relevance", "title", "id"}], "recommendations", "language", "language_note"?,
  "no_answer", "answer_source", "answer_note"?, "model_name", "model_version", "id"}`. An
  unsupported `language` falls back to detection and `language_note` says which language was
  used; `answer_source` says who wrote the answer ("extractive" or "llm", below).
- `POST /v2/models/<name>/infer` with a BYTES `query` tensor (shape [1]) and optional BYTES
  `context` (a JSON object as text) and `language` answers BYTES outputs, each one string
  of shape [1]: `answer` (the text), `sources` (the sources list as JSON text),
  `recommendations` (JSON text), `language`; `parameters.no_answer` says when the knowledge
  base had no good answer, `parameters.answer_source` (and `answer_note`) who wrote the answer.
  We chose JSON text in BYTES tensors so that a v2 client gets
  the whole structured answer without a second, kb-only protocol.
- Health and metadata as the other roles: `/v2/health/live|ready`, `/v2`, `/v2/models/<name>`
  (its `versions` lists the served one: what the rollout reconciler reads),
  `/v2/models/<name>/ready`, `/v1/models/<name>`; `/metrics`.
- `POST /v2/repository/models/<name>/load` `{"parameters": {"version": "2"}}` switches versions
  as the predictor's does: the new index is fetched, checked against its manifest and the
  version's corpus-hash tag, loaded and smoke-asked while the old one keeps answering; a
  refused index answers 422 naming why, and the old version keeps serving.

The version is pinned once (an alias such as `champion` is resolved to a number at start)
and followed only through the load API, so `serving.rollout`'s reconciler, run with
`CASTML_PROJECT=<project>-kb` and this server's URL, moves it when `@champion` moves.
Answers run on one worker thread (the tokenizer and embedder are shared), so the event loop
stays free for probes and loads.

With `CASTML_LLM_BASE_URL` set, each answer (never a no-answer) is then rewritten by that
OpenAI-compatible endpoint from the retrieved passages only, awaited on the event loop (no
thread held while it thinks); a rewrite that drops or invents a citation, a timeout or any
endpoint error keeps the extractive answer, `answer_source: "extractive"` and an
`answer_note` saying why. Sources and recommendations are never the LLM's.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from castml.knowledge.answer_composer import KnowledgeAnswer
from castml.knowledge.answer_rewrite import arewrite_answer
from castml.knowledge.kb_errors import IndexMismatchError
from castml.knowledge.knowledge_base import KnowledgeBase
from castml.knowledge.tokenizing import KnowledgeTokenizer
from castml.protocol.mlflow_names import KB_SUFFIX, kb_model_name
from castml.spec import ProjectSpec, load_spec
from castml.web.asgi import App, Request, Response, encode_header, json_response, new_request_id
from serving.errors import LoadInProgressError, NotFoundError, NotReadyError, VersionRefusedError
from serving.knowledge_log import KnowledgeLog, knowledge_log
from serving.knowledge_request import KnowledgeQuery, v1_query, v2_query
from serving.knowledge_store import IndexSource, LocalIndexStore, RegistryIndexStore
from serving.metrics import KnowledgeMetrics
from serving.predictor import VERSION_HEADER, _load_ref
from serving.settings import ServingSettings
from serving.v2_routes import add_v2_routes

SMOKE_QUERY = "gas porosity causes"


def project_of(name: str) -> str:
    """`diecast-kb` or `diecast` -> `diecast` (KServe's --model_name may be either)."""
    return name[: -len(KB_SUFFIX)] if name.endswith(KB_SUFFIX) else name


@dataclass(frozen=True)
class ServedKnowledge:
    """One loaded index version. Immutable: a switch replaces the whole object."""

    name: str
    version: str
    kb: KnowledgeBase
    loaded_at: float


def index_source(settings: ServingSettings, name: str) -> IndexSource:
    if settings.model_store is not None:
        return LocalIndexStore(settings.model_store)
    return RegistryIndexStore(
        settings.tracking_uri, name, settings.version_cache, settings.mlflow_timeout_s
    )


class KnowledgeSlot:
    """The served version behind one reference; a switch loads beside it, then swaps."""

    def __init__(
        self, source: IndexSource, spec: ProjectSpec, name: str, metrics: KnowledgeMetrics
    ) -> None:
        self.source, self.spec, self.name, self.metrics = source, spec, name, metrics
        self.tokenizer = KnowledgeTokenizer()
        self.asker = ThreadPoolExecutor(1, thread_name_prefix="kb-ask")
        self._current: ServedKnowledge | None = None
        self._lock = asyncio.Lock()

    @property
    def current(self) -> ServedKnowledge:
        served = self._current
        if served is None:
            raise NotReadyError("the knowledge base is not loaded yet; retry shortly")
        return served

    @property
    def ready(self) -> bool:
        return self._current is not None

    def _load(self, version: str) -> ServedKnowledge:
        index_dir, corpus_hash = self.source.fetch(version)
        try:
            kb = KnowledgeBase.load(index_dir, self.spec, self.tokenizer, corpus_hash)
        except IndexMismatchError as exc:
            raise VersionRefusedError(f"version {version}: {exc}") from None
        return ServedKnowledge(self.name, version, kb, time.time())

    def _smoke(self, served: ServedKnowledge) -> None:
        try:
            served.kb.ask(SMOKE_QUERY)
        except Exception as exc:
            raise VersionRefusedError(
                f"version {served.version} failed its smoke query: {type(exc).__name__}: {exc}"
            ) from exc

    def _install(self, served: ServedKnowledge) -> str | None:
        previous = self._current.version if self._current else None
        self._current = served  # the switch: one reference assignment
        self.metrics.served(self.name, served.version)
        return previous

    def load_blocking(self, ref: str) -> ServedKnowledge:
        """At start-up, before the event loop serves anything."""
        served = self._load(self.source.resolve(ref))
        self._smoke(served)
        self._install(served)
        return served

    async def load(self, ref: str) -> dict[str, Any]:
        """Switch to `ref`; a version that is refused raises and nothing changes."""
        if self._lock.locked():
            raise LoadInProgressError("another load is in progress; retry when it has finished")
        async with self._lock:
            started = time.perf_counter()
            version = await asyncio.to_thread(self.source.resolve, ref)
            previous = self._current.version if self._current else None
            if previous != version:
                served = await asyncio.to_thread(self._load, version)
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self.asker, self._smoke, served)
                self._install(served)
            return {
                "name": self.name,
                "version": version,
                "previous_version": previous,
                "switched": previous != version,
                "load_ms": round((time.perf_counter() - started) * 1000, 2),
            }


class KnowledgeServer:
    def __init__(self, settings: ServingSettings, project: str | None = None) -> None:
        self.settings = settings
        self.spec = load_spec(project_of(project or settings.project))
        self.name = kb_model_name(self.spec.name)
        self.metrics = KnowledgeMetrics(self.spec.name, settings.kb_no_answer_window)
        self.slot = KnowledgeSlot(
            index_source(settings, self.name), self.spec, self.name, self.metrics
        )
        self.log: KnowledgeLog = knowledge_log(settings, self.name, self.metrics)
        self.llm = settings.llm_client()

    def check_model(self, name: str | None) -> None:
        if name != self.name:
            raise NotFoundError(f"unknown model '{name}'; this server serves '{self.name}'")

    def served(self, request: Request) -> ServedKnowledge:
        """The served version, for a route that names the model (and maybe a version)."""
        self.check_model(request.params.get("model"))
        served = self.slot.current
        wanted = request.params.get("version")
        if wanted is not None and wanted != served.version:
            raise NotFoundError(f"version {wanted} of '{self.name}' is not served here")
        return served

    async def ask(self, query: KnowledgeQuery) -> tuple[ServedKnowledge, str, KnowledgeAnswer]:
        """One answer, by the version served when the request arrived (taken once)."""
        started = time.perf_counter()
        served = self.slot.current
        request_id = query.request_id or new_request_id()
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(
            self.slot.asker,
            lambda: served.kb.ask(
                query.query,
                query.context,
                query.language,
                query.filters,
                k=self.settings.kb_top_k,
            ),
        )
        self.metrics.predict.observe(time.perf_counter() - started)
        self.metrics.outcome(answer.no_answer)
        if self.llm is not None:
            answer = await arewrite_answer(self.llm, query.query, answer)
        return served, request_id, answer

    def logged(
        self, served: ServedKnowledge, request_id: str, query: KnowledgeQuery, body: dict[str, Any]
    ) -> None:
        self.log.record(
            request_id, served.name, served.version, query.logged(), body, body["no_answer"]
        )

    # -- routes --------------------------------------------------------------------------

    def _headers(self, served: ServedKnowledge, request_id: str) -> list[tuple[bytes, bytes]]:
        return [
            (VERSION_HEADER, served.version.encode()),
            (b"x-request-id", encode_header(request_id)),
        ]

    async def predict_v1(self, request: Request) -> Response:
        started = time.perf_counter()
        self.check_model(request.params.get("model"))
        query = v1_query(request.json(), request.headers.get("x-request-id"))
        served, request_id, answer = await self.ask(query)
        body = {
            **answer.to_json(),
            **answer.provenance(),
            "no_answer": answer.no_answer,
            "model_name": served.name,
            "model_version": served.version,
            "id": request_id,
        }
        response = json_response(body, headers=self._headers(served, request_id))
        self.logged(served, request_id, query, body)
        self.metrics.total.observe(time.perf_counter() - started)
        return response

    async def infer_v2(self, request: Request) -> Response:
        started = time.perf_counter()
        self.served(request)
        query = v2_query(request.json(), request.headers.get("x-request-id"))
        served, request_id, answer = await self.ask(query)
        body = answer.to_json()
        outputs = {
            "answer": answer.answer,
            "sources": _json_text(answer.sources),
            "recommendations": _json_text(answer.recommendations),
            "language": answer.language,
        }
        parameters: dict[str, Any] = {"no_answer": answer.no_answer, **answer.provenance()}
        if answer.language_note:
            parameters["language_note"] = answer.language_note
        response = json_response(
            {
                "model_name": served.name,
                "model_version": served.version,
                "id": request_id,
                "parameters": parameters,
                "outputs": [
                    {"name": name, "datatype": "BYTES", "shape": [1], "data": [value]}
                    for name, value in outputs.items()
                ],
            },
            headers=self._headers(served, request_id),
        )
        self.logged(served, request_id, query, {**body, "no_answer": answer.no_answer})
        self.metrics.total.observe(time.perf_counter() - started)
        return response

    async def live(self, request: Request) -> Response:
        return json_response({"live": True})

    async def ready(self, request: Request) -> Response:
        served = self.slot.current  # NotReadyError -> 503 until the first load
        return json_response(
            {"ready": True, "version": served.version},
            headers=[(VERSION_HEADER, served.version.encode())],
        )

    async def server_metadata(self, request: Request) -> Response:
        return json_response({"name": "castml-knowledge", "extensions": ["model_repository"]})

    async def metadata(self, request: Request) -> Response:
        served = self.served(request)
        manifest = served.kb.index.manifest
        return json_response(
            {
                "name": served.name,
                "versions": [served.version],
                "platform": "castml-knowledge",
                "inputs": [
                    {"name": name, "datatype": "BYTES", "shape": [1]}
                    for name in ("query", "context", "language")
                ],
                "outputs": [
                    {"name": name, "datatype": "BYTES", "shape": [1]}
                    for name in ("answer", "sources", "recommendations", "language")
                ],
                "parameters": {
                    "corpus_hash": manifest.get("corpus_hash"),
                    "chunks": manifest.get("chunk_count"),
                    "embedding": manifest.get("embedding", {}).get("name"),
                },
            },
            headers=[(VERSION_HEADER, served.version.encode())],
        )

    async def model_ready(self, request: Request) -> Response:
        served = self.served(request)
        return json_response(
            {"name": served.name, "ready": True, "version": served.version},
            headers=[(VERSION_HEADER, served.version.encode())],
        )

    async def repository_index(self, request: Request) -> Response:
        rows = []
        if self.slot.ready:
            served = self.slot.current
            rows.append({"name": served.name, "version": served.version, "state": "READY"})
        return json_response(rows)

    async def load(self, request: Request) -> Response:
        self.check_model(request.params.get("model"))
        ref = _load_ref(request.json()) if request.body.strip() else None
        answer = await self.slot.load(ref or self.settings.model_version)
        return json_response(answer, headers=[(VERSION_HEADER, str(answer["version"]).encode())])

    async def metrics_endpoint(self, request: Request) -> Response:
        body, content_type = self.metrics.render()
        return Response(body, 200, content_type)


def _json_text(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


def build_knowledge_app(server: KnowledgeServer) -> App:
    app = App(server.settings.kb_max_body_bytes)
    s = server
    add_v2_routes(app, s, s.infer_v2)
    app.route("GET", "/v1/models/{model}", s.model_ready)
    app.route("POST", "/v1/models/{model}:predict", s.predict_v1)

    async def startup() -> None:
        if not s.slot.ready:  # `python -m serving knowledge` loads before uvicorn starts
            await asyncio.to_thread(s.slot.load_blocking, s.settings.model_version)

    async def shutdown() -> None:
        await asyncio.to_thread(s.log.close, 3.0)
        s.slot.asker.shutdown(wait=False)

    app.on_startup.append(startup)
    app.on_shutdown.append(shutdown)
    return app


def knowledge_app(
    settings: ServingSettings, project: str | None = None
) -> tuple[App, KnowledgeServer]:
    server = KnowledgeServer(settings, project)
    return build_knowledge_app(server), server
