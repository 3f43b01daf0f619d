"""Which language a text is in: Korean when Hangul is a real share of its letters."""

from __future__ import annotations

from dataclasses import dataclass

SUPPORTED = ("ko", "en")
# A Korean question often carries English feature names and units ("Process_Pressure 120 MPa"),
# so a modest Hangul share already means the user writes Korean.
HANGUL_SHARE_FOR_KOREAN = 0.2


def _is_hangul(ch: str) -> bool:
    code = ord(ch)
    return 0xAC00 <= code <= 0xD7A3 or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F


# A Hangul syllable spells what takes about three Latin letters; weigh it so.
SYLLABLE_WEIGHT = 3.0


def hangul_share(text: str) -> float:
    """Share of the text's letters that are Hangul, a syllable counting as three letters."""
    hangul = latin = 0
    for ch in text:
        if _is_hangul(ch):
            hangul += 1
        elif ch.isalpha():
            latin += 1
    weighted = hangul * SYLLABLE_WEIGHT
    return weighted / (weighted + latin) if hangul else 0.0


def detect_language(text: str) -> str:
    return "ko" if hangul_share(text) >= HANGUL_SHARE_FOR_KOREAN else "en"


@dataclass(frozen=True)
class LanguageChoice:
    language: str
    requested: str | None
    detected: bool
    note: str | None


def resolve_language(text: str, requested: str | None) -> LanguageChoice:
    """The answer language: the requested one when supported, else detection, saying so."""
    wanted = (requested or "").strip().lower()[:2] if requested else None
    if wanted in SUPPORTED:
        return LanguageChoice(wanted, requested, detected=False, note=None)
    found = detect_language(text)
    note = None
    if requested:
        note = f"language {requested!r} is not supported; detected {found!r} from the query"
    return LanguageChoice(found, requested, detected=True, note=note)
