"""The invariant every fuzzed answer must keep, and the tally of what the servers answered.

The rule (castml.web.errors, the one error contract):
- never a 5xx, except 503 when a server is overloaded, and every 503 has `Retry-After`;
- every 4xx is a JSON object `{"error": <non-empty string>, "type": <non-empty string>,
  "details": [...]}` naming the problem;
- every request gets an answer (a dropped connection or a timeout is a failure too).

A violation does not stop the run: it is counted, and the smallest bodies of each
distinct violation are kept as reproducers; the test fails at its end, naming them all.
"""

from __future__ import annotations

import base64
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.fuzz_request import FuzzRequest

KEEP_EXAMPLES = 3


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no answer (connection dropped, timeout)
    headers: dict[str, str]
    body: bytes


def send(client: httpx.Client, request: FuzzRequest) -> Answer:
    try:
        headers = [(k.encode(), v) for k, v in request.headers.items()]
        response = client.post(request.path, content=request.body, headers=headers)
    except httpx.TransportError as exc:
        return Answer(None, {}, f"{type(exc).__name__}: {exc}".encode())
    return Answer(response.status_code, dict(response.headers), response.content)


def violation(answer: Answer) -> tuple[str, str] | None:
    """(rule broken, what identifies it) or None if the answer keeps the invariant."""
    status = answer.status
    if status is None:
        return "no answer", answer.body.decode(errors="replace").split(":")[0]
    if status == 503:
        if "retry-after" not in answer.headers:
            return "503 without Retry-After", _error_type(answer.body)
        return None
    if status >= 500:
        return f"{status}", _error_type(answer.body)
    if 400 <= status < 500:
        problem = _error_body_problem(answer.body)
        if problem:
            return f"{status} body {problem}", answer.body[:80].decode(errors="replace")
    return None


def _error_type(body: bytes) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        return body[:80].decode(errors="replace")
    if isinstance(parsed, dict):
        return str(parsed.get("type") or parsed.get("error") or parsed)[:80]
    return str(parsed)[:80]


def _error_body_problem(body: bytes) -> str | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return "is not JSON"
    if not isinstance(parsed, dict):
        return "is not a JSON object"
    error = parsed.get("error")
    if not isinstance(error, str) or not error.strip():
        return "has no non-empty 'error'"
    kind = parsed.get("type")
    if not isinstance(kind, str) or not kind:
        return "has no 'type'"
    if not isinstance(parsed.get("details"), list):
        return "has no 'details' list"
    return None


@dataclass
class Failure:
    count: int = 0
    examples: list[tuple[FuzzRequest, Answer]] = field(default_factory=list)

    def keep(self, request: FuzzRequest, answer: Answer) -> None:
        self.count += 1
        self.examples.append((request, answer))
        self.examples.sort(key=lambda pair: len(pair[0].body) + len(pair[0].headers) * 16)
        del self.examples[KEEP_EXAMPLES:]


@dataclass
class Tally:
    """Counts by status per endpoint, 503s apart, and the distinct violations."""

    statuses: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    kinds: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    failures: dict[tuple[str, str, str], Failure] = field(default_factory=dict)

    def record(self, endpoint: str, request: FuzzRequest, answer: Answer) -> None:
        self.statuses[endpoint][str(answer.status or "no answer")] += 1
        self.kinds[endpoint][request.kind] += 1
        broken = violation(answer)
        if broken is not None:
            key = (endpoint, *broken)
            self.failures.setdefault(key, Failure()).keep(request, answer)

    def failures_of(self, endpoint: str) -> list[str]:
        lines = []
        for (where, rule, what), failure in sorted(self.failures.items()):
            if where != endpoint:
                continue
            lines.append(f"{failure.count}x {rule} ({what}); smallest:")
            for request, answer in failure.examples:
                lines.append(f"    {request.reproducer()}")
                lines.append(f"      -> {answer.status} {answer.body[:200]!r}")
        return lines

    def summary(self) -> list[str]:
        codes = sorted({c for counter in self.statuses.values() for c in counter})
        width = max([len(e) for e in self.statuses] + [8])
        head = f"{'endpoint':<{width}} {'total':>6} " + " ".join(f"{c:>6}" for c in codes)
        lines = [head + "  violations"]
        for endpoint, counter in sorted(self.statuses.items()):
            bad = sum(f.count for k, f in self.failures.items() if k[0] == endpoint)
            lines.append(
                f"{endpoint:<{width}} {sum(counter.values()):>6} "
                + " ".join(f"{counter.get(c, 0):>6}" for c in codes)
                + f"  {bad}"
            )
        return lines

    def write_report(self, path: Path) -> None:
        """Every kept reproducer, bodies in base64, for re-checking by hand."""
        rows: list[dict[str, Any]] = []
        for (endpoint, rule, what), failure in sorted(self.failures.items()):
            for request, answer in failure.examples:
                rows.append(
                    {
                        "endpoint": endpoint,
                        "rule": rule,
                        "what": what,
                        "count": failure.count,
                        "target": request.target,
                        "path": request.path,
                        "headers": {
                            k: v.decode("utf-8", "backslashreplace")
                            for k, v in request.headers.items()
                        },
                        "body_base64": base64.b64encode(request.body).decode(),
                        "status": answer.status,
                        "answer": answer.body[:500].decode(errors="replace"),
                    }
                )
        statuses = {e: dict(c) for e, c in self.statuses.items()}
        path.write_text(json.dumps({"statuses": statuses, "failures": rows}, indent=1))
