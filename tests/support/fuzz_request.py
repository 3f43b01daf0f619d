"""One fuzzed HTTP request, and how much of each kind an endpoint's strategy draws."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

from tests.support.fuzz_json import json_body, json_values, raw_mutation

# Bodies over the servers' 4 MiB limit (CASTML_MAX_BODY_BYTES); must be 413, not parsed.
OVERSIZED_BYTES = 4 * 1024 * 1024 + 1


@dataclass(frozen=True)
class FuzzRequest:
    target: str  # which server: predictor, transformer, explainer, collector
    path: str
    body: bytes
    headers: dict[str, bytes] = field(default_factory=dict)
    kind: str = "valid"  # valid | mutated | raw | random | oversized: what the strategy drew

    def reproducer(self, limit: int = 400) -> str:
        body = self.body if len(self.body) <= limit else self.body[:limit] + b"...(truncated)"
        shown = {k: v.decode("utf-8", "backslashreplace") for k, v in self.headers.items()}
        return f"POST {self.path} [{self.target}] headers={shown} body={body!r}"


@st.composite
def body_of_kind(
    draw: st.DrawFn, valid: st.SearchStrategy[object], mutated: st.SearchStrategy[object]
) -> tuple[str, bytes]:
    """(kind, body): ~35% valid, ~45% mutated, ~12% broken text, ~8% random JSON, ~1% huge."""
    roll = draw(st.integers(0, 99))
    if roll == 57:  # a rare kind sits mid-range: hypothesis draws a range's ends often
        return "oversized", b" " * OVERSIZED_BYTES + b"{}"
    if roll < 35:
        return "valid", draw(valid.flatmap(json_body))
    if roll < 80:
        return "mutated", draw(mutated.flatmap(json_body))
    if roll < 92:
        base = draw(st.one_of(valid, mutated).flatmap(json_body))
        return "raw", draw(raw_mutation(base))
    return "random", draw(json_values().flatmap(json_body))
