"""Build the die-casting knowledge corpus: `python -m castml.knowledge.corpus_gen --out DIR`.

Every document under `documents/`, `catalog.json` and `eval/queries.jsonl` is generated from
`corpus/source/*.yaml` (the hand-written process knowledge, both languages), the diecast spec
(units and normal ranges, so the text can never disagree with it) and the data generator
(`castml.data.diecast`: the past defect cases are shots it marks defective, with the mechanism
that dominates their defect logit as the root cause). Seeded and byte-for-byte deterministic;
the PDFs are written by reportlab with `invariant=1`. Korean PDFs embed a TTF (NanumGothic from
the Debian package `fonts-nanum`), which is needed only to regenerate them.
"""

# This module only parses arguments and orchestrates; the documents come from corpus_knowledge
# and corpus_cases, are written by corpus_documents and corpus_pdf, and the evaluation set by
# corpus_queries.

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from castml.knowledge.corpus_cases import case_documents, cases, review_document
from castml.knowledge.corpus_documents import write_catalog, write_document
from castml.knowledge.corpus_knowledge import checklists, guides, manual
from castml.knowledge.corpus_model import LANGUAGES, Document
from castml.knowledge.corpus_pdf import DEFAULT_FONT_DIR
from castml.knowledge.corpus_queries import write_queries
from castml.spec import load_spec


def all_documents() -> tuple[list[Document], dict[str, Any]]:
    """Every document, and what the evaluation set needs to name passages in them."""
    spec = load_spec("diecast")
    features = {f.name: f for f in spec.features}
    reports, reviews, spare = cases(features)
    docs: list[Document] = []
    for lang in LANGUAGES:
        docs.append(manual(lang, features))
        docs += guides(lang, features)
        docs += checklists(lang, features)
        docs += case_documents(lang, reports[lang])
        docs.append(review_document(lang, reviews[lang]))
    return docs, {"features": features, "reports": reports, "reviews": reviews, "spare": spare}


def build(
    out: Path, font_dir: Path | None = DEFAULT_FONT_DIR, only: set[str] | None = None
) -> list[dict[str, Any]]:
    """Write the documents (all, or the ids in `only`); the full build adds catalog and eval."""
    docs, context = all_documents()
    chosen = [d for d in docs if only is None or d.doc_id in only]
    entries = [write_document(doc, out, font_dir) for doc in chosen]
    if only is None:
        write_catalog(out, entries)
        write_queries(out / "eval" / "queries.jsonl", docs, context)
    return entries


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m castml.knowledge.corpus_gen", description=__doc__
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "corpus")
    parser.add_argument(
        "--font-dir",
        type=Path,
        default=DEFAULT_FONT_DIR,
        help="folder with NanumGothic.ttf and NanumGothicBold.ttf (fonts-nanum)",
    )
    args = parser.parse_args(argv)
    try:
        entries = build(args.out, args.font_dir)
    except FileNotFoundError as exc:
        print(f"corpus_gen: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(entries)} documents, catalog.json and eval/queries.jsonl under {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
