"""Uploaded CSVs: read within the size limit, checked, profiled, stored all at once.

An upload is stored only when it can train: the CSV, its drafted spec (`spec.yaml`) and
what the upload answered (`upload.json`) are written into a hidden folder that is renamed
to `uploads/<file_id>` in one step, so a reader never sees half an upload. A CSV that
parses but cannot train (no target, a single class) answers `validation.isValid=false`
with `file_id: null` and leaves nothing behind; a body that is no CSV at all answers 4xx.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from starlette.types import Message, Receive

from castml.errors import CastmlError
from castml.web.errors import NotFoundError, PayloadTooLargeError, UnsupportedMediaTypeError
from studio.profiling import binary_values, profile

SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
FILE_ID = re.compile(r"^[0-9a-f]{12}$")
PREVIEW_ROWS = 10
UPLOAD_FILE = "upload.json"
SPEC_FILE = "spec.yaml"


class UploadError(CastmlError):
    """The uploaded file cannot be read as a CSV table."""


def limited_receive(receive: Receive, limit: int) -> Receive:
    """An ASGI `receive` that raises 413 once the body passes `limit` bytes (chunked too)."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise PayloadTooLargeError(limit, "CASTML_STUDIO_MAX_UPLOAD_BYTES")
        return message

    return counted


def safe_filename(raw: str) -> tuple[str, list[str]]:
    """The name the file is stored under, and warnings when it differs from `raw`.

    A name with a path in it is refused (a client never needs one); any character outside
    letters, digits, `.`, `_` and `-` becomes `_`, so markup cannot travel in a name.
    """
    if not raw:
        raise UploadError("the upload has no filename")
    if "/" in raw or "\\" in raw or raw.startswith("..") or "\x00" in raw:
        raise UploadError(f"filename {raw!r} holds a path: send a plain file name")
    name = SAFE_CHARS.sub("_", raw).lstrip("._") or "upload.csv"
    if not name.lower().endswith(".csv"):
        raise UnsupportedMediaTypeError(f"'{name}' is not a CSV file: send a .csv")
    if len(name) > 120:  # keep the suffix: the stored name still says CSV
        name = name[:116] + name[-4:]
    warnings = [f"filename {raw!r} was stored as '{name}'"] if name != raw else []
    return name, warnings


def read_csv(content: bytes) -> pd.DataFrame:
    """The bytes as a table, or an error naming why they are not a UTF-8 CSV."""
    if not content.strip():
        raise UploadError("the file is empty")
    if b"\x00" in content[:4096]:
        raise UnsupportedMediaTypeError("the file is binary, not a CSV text file")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UploadError(
            f"the file is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8"
        ) from exc
    try:
        frame = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise UploadError(f"the file is not a readable CSV: {exc}") from exc
    if frame.empty or len(frame.columns) < 2:
        raise UploadError("the CSV has no data rows or fewer than two columns")
    return frame


def _json_safe(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(frame.to_json(orient="records", date_format="iso"))
    return rows


@dataclass(frozen=True)
class UploadStore:
    root: Path

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    def folder(self, file_id: str) -> Path:
        folder = self.uploads / file_id
        if not FILE_ID.match(file_id) or not (folder / UPLOAD_FILE).is_file():
            raise NotFoundError(f"unknown file_id '{file_id}'")
        return folder

    def answer(self, file_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads((self.folder(file_id) / UPLOAD_FILE).read_text())
        return answer

    def spec_path(self, file_id: str) -> Path:
        return self.folder(file_id) / SPEC_FILE

    def spec(self, file_id: str) -> dict[str, Any]:
        spec: dict[str, Any] = yaml.safe_load(self.spec_path(file_id).read_text())
        return spec

    def csv_path(self, file_id: str) -> Path:
        return self.folder(file_id) / str(self.answer(file_id)["filename"])

    def frame(self, file_id: str) -> pd.DataFrame:
        return pd.read_csv(self.csv_path(file_id))

    def all_uploads(self) -> list[dict[str, Any]]:
        if not self.uploads.is_dir():
            return []
        return [
            json.loads((p / UPLOAD_FILE).read_text())
            for p in sorted(self.uploads.iterdir())
            if (p / UPLOAD_FILE).is_file()
        ]

    def store(self, raw_name: str, content: bytes, family: str) -> dict[str, Any]:
        """Check, profile and keep one upload; the answer `POST /api/upload` gives."""
        filename, warnings = safe_filename(raw_name)
        frame = read_csv(content)
        file_id = uuid.uuid4().hex[:12]
        final = self.uploads / file_id
        drafted = profile(frame, f"ctr-{file_id}", str(final / filename), family)
        labels = binary_values(frame[drafted.target]) if drafted.target else None
        clicked = int(np.nansum(labels)) if labels is not None else 0
        answer: dict[str, Any] = {
            "file_id": file_id if drafted.spec is not None else None,
            "filename": filename,
            "rows": len(frame),
            "columns": len(frame.columns),
            "column_names": [str(c) for c in frame.columns],
            "target": drafted.target,
            "validation": {
                "isValid": drafted.spec is not None,
                "errors": drafted.errors,
                "warnings": warnings + drafted.warnings,
            },
            "info": {
                "totalRows": len(frame),
                "clickedOne": clicked,
                "ctr": round(clicked / len(frame), 6),
            },
            "preview": _json_safe(frame.head(PREVIEW_ROWS)),
        }
        if drafted.spec is None:
            return answer
        incoming = self.uploads / f".incoming-{file_id}"
        incoming.mkdir(parents=True)
        try:
            (incoming / filename).write_bytes(content)
            (incoming / SPEC_FILE).write_text(yaml.safe_dump(drafted.spec, sort_keys=False))
            (incoming / UPLOAD_FILE).write_text(json.dumps(answer))
            os.rename(incoming, final)  # the upload appears whole or not at all
        except BaseException:
            shutil.rmtree(incoming, ignore_errors=True)
            raise
        return answer
