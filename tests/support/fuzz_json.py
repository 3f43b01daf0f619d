"""Hypothesis building blocks for fuzzing JSON endpoints: hostile values, raw JSON text, headers.

Bodies are built as Python objects and written by `encode`, which can put tokens into
the text that no JSON library writes on purpose: `NaN`/`Infinity`, numbers beyond any
float or int64 (`1e400`, 2**70), lone surrogate escapes. `raw_mutation` then breaks
the text itself (truncated, invalid UTF-8, a BOM, garbage), so each endpoint sees both
bodies that parse and bodies that do not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st


@dataclass(frozen=True)
class Raw:
    """A token written into the JSON text as is (e.g. `1e400`, `NaN`, `-0`)."""

    text: str


RAW_NUMBERS = ("NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-400", "-0", "1E+308")
# Strings a parser or a path, a log line or a header may choke on.
NASTY_STRINGS = (
    "",
    " ",
    "\x00",
    "null",
    "NaN",
    "1e400",
    "１２３",  # full-width digits
    "\u202etxt.exe",
    "é",
    "\U0001f600",
    "a" * 2000,
    "\ud800",  # a lone surrogate: JSON can carry it, UTF-8 cannot
    "<x/>",
    "%s%n",
)
HUGE_INTS = (2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**19, 10**30, -(2**63) - 1, 10**400)
ODD_FLOATS = (1e308, -1e308, 5e-324, -0.0, 1e19, 3.4e38, 3.5e38, 1e-45)


def hostile_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from([None, True, False, 0, -1, 1]),
        st.sampled_from(HUGE_INTS),
        st.sampled_from(ODD_FLOATS),
        st.sampled_from([Raw(t) for t in RAW_NUMBERS]),
        st.sampled_from(NASTY_STRINGS),
        st.text(max_size=20),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(),
    )


def deep_list(depth: int) -> Raw:
    """Nesting deeper than a recursive parser or numpy (64 dimensions) takes."""
    return Raw("[" * depth + "1.0" + "]" * depth)


def hostile_values() -> st.SearchStrategy[Any]:
    """Scalars, and containers where a scalar is expected."""
    return st.one_of(
        hostile_scalars(),
        st.sampled_from([[], {}, [1.0], [[1.0]], {"value": 1.0}, [None]]),
        st.sampled_from([deep_list(70), deep_list(2000)]),
        st.lists(hostile_scalars(), max_size=4),
        st.dictionaries(st.text(max_size=8), hostile_scalars(), max_size=3),
    )


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Arbitrary JSON (plus the raw tokens)."""
    return st.recursive(
        hostile_scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
        ),
        max_leaves=max_leaves,
    )


def _placeholders(value: Any, raws: list[str]) -> Any:
    if isinstance(value, Raw):
        raws.append(value.text)
        return f"@@raw{len(raws) - 1}@@"
    if isinstance(value, dict):
        return {str(k): _placeholders(v, raws) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_placeholders(v, raws) for v in value]
    return value


def encode(value: Any, ascii_only: bool = True) -> bytes:
    """JSON text of `value`; `Raw` tokens are written bare, NaN/inf floats as tokens.

    With `ascii_only=False` the text is UTF-8, and a lone surrogate becomes bytes that
    are not valid UTF-8 at all (surrogatepass), another thing a server must refuse.
    """
    raws: list[str] = []
    text = json.dumps(_placeholders(value, raws), ensure_ascii=ascii_only, allow_nan=True)
    for i, token in enumerate(raws):
        text = text.replace(f'"@@raw{i}@@"', token)
    return text.encode("utf-8", "surrogatepass")


@st.composite
def raw_mutation(draw: st.DrawFn, body: bytes) -> bytes:
    """`body` broken as text: the parser, not the validation, must refuse it."""
    kind = draw(st.sampled_from(["truncate", "garbage", "utf8", "bom", "blank", "double", "pad"]))
    cut = draw(st.integers(0, max(len(body) - 1, 0)))
    if kind == "truncate":
        return body[:cut]
    if kind == "garbage":
        junk = draw(st.sampled_from([b"}", b"]", b",", b"\x00", b"'", b"NaN", b"//", b"\\"]))
        return body[:cut] + junk + body[cut:]
    if kind == "utf8":
        return body[:cut] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])) + body[cut:]
    if kind == "bom":
        return b"\xef\xbb\xbf" + body
    if kind == "blank":
        return draw(st.sampled_from([b"", b" ", b"\n\t ", b"null", b"0", b'""', b"[]", b"{}"]))
    if kind == "double":
        return body + body
    return b" " * draw(st.integers(1, 4096)) + body


def json_body(value: Any) -> st.SearchStrategy[bytes]:
    """`value` as JSON text, ASCII or UTF-8."""
    return st.booleans().map(lambda ascii_only: encode(value, ascii_only))


# --- headers ---------------------------------------------------------------------------

JSON_TYPES = ("application/json", "application/json; charset=utf-8", "APPLICATION/JSON")
WRONG_TYPES = (
    "text/plain",
    "application/xml",
    "image/png",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded",
    "application/octet-stream",
    "application/cloudevents-batch+json",
    "*/*",
    ";",
    "application/",
)
TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-"


def header_text(max_size: int = 64) -> st.SearchStrategy[bytes]:
    """A header value HTTP/1.1 can carry (no CR/LF, no edge spaces), as UTF-8 bytes."""
    chars = st.characters(
        blacklist_categories=("Cs", "Cc"), blacklist_characters="\x7f"
    )  # control characters cannot travel in a header at all
    return st.text(chars, max_size=max_size).map(lambda s: s.strip().encode("utf-8"))


@st.composite
def content_type(draw: st.DrawFn, valid: tuple[str, ...] = JSON_TYPES) -> str | None:
    """Mostly one of `valid`; else absent, a wrong type, or noise."""
    roll = draw(st.integers(0, 9))
    if roll < 6:
        return draw(st.sampled_from(valid))
    if roll == 6:
        return None
    if roll < 9:
        return draw(st.sampled_from(WRONG_TYPES))
    return draw(header_text(40)).decode("utf-8") or None


@st.composite
def extra_headers(draw: st.DrawFn) -> dict[str, bytes]:
    """Request ids (ASCII, non-ASCII, long) and a stray header or two."""
    headers: dict[str, bytes] = {}
    roll = draw(st.integers(0, 5))
    if roll == 1:
        headers["x-request-id"] = draw(st.text(TOKEN_CHARS, min_size=1, max_size=40)).encode()
    elif roll == 2:
        headers["x-request-id"] = draw(header_text(40))
    elif roll == 3:
        headers["x-request-id"] = "요청-🙂-é".encode()
    elif roll == 4:
        headers["x-request-id"] = b"r" * 2048
    if draw(st.integers(0, 9)) == 0:
        name = "x-" + draw(st.text(TOKEN_CHARS, min_size=1, max_size=20))
        headers[name] = draw(header_text())
    return headers
