"""`manifest.json`: what every model directory says about itself, whatever its family.

The `family` key picks the loader (`castml.runtime.loaded_model.load_model`); model
directories written before families existed have none and are `ae_gbm`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Manifest:
    project: str
    task: str  # binary_classification | regression
    features: list[str]  # the model's input columns, in order
    latent_dim: int  # extra `latent` output columns (0: the family has none)
    threshold: float  # decision threshold on the probability (classification)
    class_names: list[str] | None
    family: str = "ae_gbm"

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        raw: dict[str, Any] = json.loads((directory / MANIFEST).read_text())
        if raw.pop("format_version", None) != FORMAT_VERSION:
            raise ValueError(f"{directory}: unsupported model format")
        return cls(**raw)

    def write(self, directory: Path) -> None:
        body = {"format_version": FORMAT_VERSION, **self.__dict__}
        (directory / MANIFEST).write_text(json.dumps(body, indent=2))

    @property
    def is_classification(self) -> bool:
        return self.task == "binary_classification"
