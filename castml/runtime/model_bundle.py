"""What a model directory carries beside the model itself, so a downloaded version is whole.

- `spec.yaml`: the project spec as validated (`read_spec` reloads it identically);
- `encoding.json`: the `EncodingState` learned in training (vocabularies, imputed values,
  derived-feature state) that turns raw typed values into the model's input matrix;
- `target.json`: what the model's regression output is on (`target_transform`), inverted
  on output.

Serving and monitoring read these from a registered version instead of the spec bundled
with the package. This module is bundled into the pyfunc: it imports castml's spec
(pydantic) only inside `read_spec`/`write_spec`, which the pyfunc never calls.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from castml.data.tabular_encoding import EncodingState

if TYPE_CHECKING:
    from castml.spec import ProjectSpec

SPEC_FILE = "spec.yaml"
ENCODING_FILE = "encoding.json"
TARGET_FILE = "target.json"


def write_spec(model_dir: Path, spec: ProjectSpec) -> None:
    import yaml

    body = spec.model_dump(mode="json", by_alias=True)
    # libyaml's emitter when built in: the same text, ~5x faster (a flattened window's ~100
    # features: 50 ms -> 10 ms of every lstm_seq train step).
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text = yaml.dump(body, Dumper=dumper, sort_keys=False, allow_unicode=True)
    (model_dir / SPEC_FILE).write_text(text)


def read_spec(model_dir: str | Path) -> ProjectSpec:
    """The spec the model in `model_dir` was trained under."""
    import yaml

    from castml.spec import ProjectSpec

    return ProjectSpec.model_validate(yaml.safe_load((Path(model_dir) / SPEC_FILE).read_text()))


def write_encoding(model_dir: Path, state: EncodingState) -> None:
    (model_dir / ENCODING_FILE).write_text(json.dumps(state.to_json(), indent=1))


def read_encoding(model_dir: str | Path) -> EncodingState:
    """The encoder state learned when the model in `model_dir` was trained."""
    return EncodingState.from_json(json.loads((Path(model_dir) / ENCODING_FILE).read_text()))


def has_encoding(model_dir: str | Path) -> bool:
    return (Path(model_dir) / ENCODING_FILE).is_file()


def write_target_transform(model_dir: Path, transform: str) -> None:
    (model_dir / TARGET_FILE).write_text(json.dumps({"target_transform": transform}))


def read_target_transform(model_dir: Path) -> str:
    path = model_dir / TARGET_FILE
    if not path.is_file():
        return "none"
    raw: dict[str, Any] = json.loads(path.read_text())
    return str(raw.get("target_transform", "none"))


def design_matrix(x: np.ndarray, encoding: EncodingState | None) -> np.ndarray:
    """The model's float32 input for `x`.

    `x` is the encoded matrix (any float dtype: returned as C-contiguous float32, the
    serving path), or an object array of raw typed values, one column per raw feature in
    `encoding.names` order (the offline path: evaluation and registration score each
    model with its own learned encoding, so a champion with another vocabulary is scored
    right). Raw values are refused as `EncodingError` exactly as serving refuses them.
    """
    x = np.asarray(x)
    if x.dtype != object:
        return np.ascontiguousarray(x, dtype=np.float32)
    if encoding is None:
        raise ValueError("raw (object) input needs the model's encoding.json")
    if x.ndim != 2 or x.shape[1] != len(encoding.names):
        raise ValueError(f"raw input must be [N, {len(encoding.names)}], got {list(x.shape)}")
    columns = {name: x[:, i] for i, name in enumerate(encoding.names)}
    return np.ascontiguousarray(encoding.encode(columns, np.float32))
