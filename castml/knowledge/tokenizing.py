"""BM25 tokens: Korean morphemes (kiwipiepy, its model ships in the `kiwipiepy_model` wheel)
and English words lower-cased, stop-worded and Snowball-stemmed (PyStemmer).

Korean text routinely carries English feature names and units, so a text with Hangul goes
through Kiwi whole and Kiwi's foreign-word tokens (tag SL) take the English path.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

import Stemmer
from bm25s.stopwords import STOPWORDS_EN

from castml.knowledge.language import hangul_share

# Content morphemes: nouns, numbers, roots, verb/adjective stems, foreign words, hanja.
_KO_KEEP = {"NNG", "NNP", "NR", "SN", "SL", "SH", "XR", "VV", "VA", "MAG"}
_KO_STOP = {"때", "것", "수", "등", "및", "중", "경우", "하다", "되다", "있다", "없다", "이다"}
_EN_WORD = re.compile(r"[a-z]+|\d+(?:\.\d+)?")
_EN_STOP = frozenset(STOPWORDS_EN) | {"what", "why", "how", "when", "which", "causing", "cause"}


class KnowledgeTokenizer:
    """One instance per process: Kiwi takes about a second to load and warm up."""

    def __init__(self) -> None:
        from kiwipiepy import Kiwi  # imported here: loading it is the slow part

        self._kiwi: Any = Kiwi()
        self._kiwi.tokenize("워밍업")  # the first call builds Kiwi's caches
        self._stemmer = Stemmer.Stemmer("english")
        # Kiwi and PyStemmer objects are not documented as thread-safe; servers share one.
        self._lock = threading.Lock()

    def _english(self, text: str) -> list[str]:
        words = [w for w in _EN_WORD.findall(text.lower()) if w not in _EN_STOP]
        return list(self._stemmer.stemWords(words))

    def _korean(self, morphs: Sequence[Any]) -> list[str]:
        out: list[str] = []
        for m in morphs:
            tag = str(m.tag).split("-")[0]
            if tag not in _KO_KEEP:
                continue
            if tag == "SL":
                out.extend(self._english(m.form))
                continue
            form = getattr(m, "lemma", "") or m.form if tag in {"VV", "VA"} else m.form
            if form not in _KO_STOP:
                out.append(form.lower())
        return out

    def tokenize(self, text: str) -> list[str]:
        return self.tokenize_many([text])[0]

    def tokenize_many(self, texts: Sequence[str]) -> list[list[str]]:
        results: list[list[str] | None] = [None] * len(texts)
        korean = [i for i, t in enumerate(texts) if hangul_share(t) > 0]
        with self._lock:
            if korean:
                analysed = self._kiwi.tokenize([texts[i] for i in korean])
                for i, morphs in zip(korean, analysed, strict=True):
                    results[i] = self._korean(morphs)
            for i, text in enumerate(texts):
                if results[i] is None:
                    results[i] = self._english(text)
        return [r or [] for r in results]
