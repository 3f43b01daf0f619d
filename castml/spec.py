"""Project specs: `castml/projects/<name>.yaml` describes a data set and its model.

A new tabular project (CSV, Parquet, or a bundled scikit-learn data set; binary
classification or regression) needs only a new spec file, never new code.
"""

from __future__ import annotations

import copy
import functools
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from castml.errors import SpecError

PROJECTS_DIR = Path(__file__).parent / "projects"


class Task(StrEnum):
    BINARY = "binary_classification"
    REGRESSION = "regression"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Feature(_Strict):
    name: str = Field(description="Feature name as served and logged.")
    column: str | None = Field(None, description="Source column, when it differs from `name`.")
    dtype: Literal["float"] = Field("float", description="Every feature is served as FP32.")
    unit: str = Field("", description="Physical unit, for docs and reports.")
    bounds: tuple[float, float] = Field(description="Hard physical bounds; outside is an error.")
    normal: tuple[float, float] | None = Field(None, description="Normal operating range.")
    description: str = ""

    @property
    def source_column(self) -> str:
        return self.column or self.name

    @model_validator(mode="after")
    def _ordered(self) -> Feature:
        lo, hi = self.bounds
        if not lo < hi:
            raise ValueError(f"feature {self.name}: bounds must be [low, high] with low < high")
        if self.normal is not None and not lo <= self.normal[0] < self.normal[1] <= hi:
            raise ValueError(f"feature {self.name}: normal range must lie inside the bounds")
        return self


class Source(_Strict):
    kind: Literal["generator", "csv", "parquet", "sklearn"]
    generator: str | None = Field(None, description="Generator name for kind=generator.")
    path: str | None = Field(None, description="File path for kind=csv/parquet.")
    dataset: str | None = Field(None, description="scikit-learn loader name, e.g. breast_cancer.")
    rows: int | None = Field(None, description="Rows to generate (kind=generator).")
    seed: int = 0

    @model_validator(mode="after")
    def _complete(self) -> Source:
        needed = {"generator": "generator", "csv": "path", "parquet": "path", "sklearn": "dataset"}
        field = needed[self.kind]
        if getattr(self, field) is None:
            raise ValueError(f"source kind '{self.kind}' needs '{field}'")
        return self


class Split(_Strict):
    test: float = Field(0.2, gt=0, lt=0.5)
    validation: float = Field(0.2, gt=0, lt=0.5)
    seed: int = 0


class ModelSpec(_Strict):
    family: Literal["ae_gbm"] = "ae_gbm"
    params: dict[str, dict[str, Any]]
    profiles: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)
    seed: int = 0

    def resolved(
        self, profile: str | None = None, overrides: dict[str, Any] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Hyper-parameters: `params`, overlaid by a profile, then by explicit overrides."""
        params = copy.deepcopy(self.params)
        layers: list[dict[str, Any]] = []
        if profile:
            if profile not in self.profiles:
                known = ", ".join(sorted(self.profiles)) or "none"
                raise SpecError(f"unknown profile '{profile}' (known: {known})")
            layers.append(self.profiles[profile])
        if overrides:
            layers.append(overrides)
        for layer in layers:
            for block, values in layer.items():
                if block not in params:
                    raise SpecError(f"override names unknown parameter block '{block}'")
                unknown = sorted(set(values) - set(params[block]) - {"seed"})
                if unknown:
                    raise SpecError(f"unknown {block} parameter(s): {', '.join(unknown)}")
                params[block].update(values)
        return params


class ValidationRules(_Strict):
    min_rows: int = 100
    min_class_rows: int = 10


class Gates(_Strict):
    floors: dict[str, float] = Field(default_factory=dict, description="metric -> minimum")
    max_regression: dict[str, float] = Field(
        default_factory=dict, description="metric -> most it may drop below @champion"
    )
    lower_is_better: list[str] = Field(default_factory=list, description="e.g. rmse, mae")


class Monitoring(_Strict):
    reference_rows: int = 2000
    background_rows: int = 100
    drift_share: float = 0.3
    stattest_threshold: float = 0.05
    min_window_rows: int = 200
    min_f1: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Realised-F1 floor (binary classification): below it, over at least "
        "min_window_rows labelled window rows, the drift job requests a `performance` "
        "retrain and the alert rules (`castml alerts`) fire. None: no performance trigger.",
    )


class Retrain(_Strict):
    schedule: str = "0 0 2 1 * *"
    cooldown_hours: float = 24
    monthly_budget: int = 4
    logged_window_days: int = Field(
        30,
        gt=0,
        description="Days of logged traffic (ending now) whose labelled rows a drift, "
        "performance or schedule retrain trains on, next to the spec's source.",
    )
    min_logged_rows: int = Field(
        200,
        ge=1,
        description="Labelled, valid logged rows that count as enough to train on logged "
        "traffic. Fewer: the retrain trains on the spec's source alone, and the decision's "
        "evidence says why.",
    )


class ProjectSpec(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    description: str = ""
    task: Task
    target: str
    class_names: tuple[str, str] | None = None
    source: Source
    features: list[Feature]
    split: Split = Split()
    model: ModelSpec
    validation: ValidationRules = ValidationRules()
    gates: Gates = Gates()
    monitoring: Monitoring = Monitoring()
    retrain: Retrain = Retrain()

    @model_validator(mode="after")
    def _consistent(self) -> ProjectSpec:
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate feature names: {', '.join(dupes)}")
        if self.target in names:
            raise ValueError(f"target '{self.target}' is also listed as a feature")
        if self.task is Task.BINARY and self.class_names is None:
            raise ValueError("binary_classification needs class_names: [negative, positive]")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def is_classification(self) -> bool:
        return self.task is Task.BINARY


@functools.lru_cache(maxsize=64)
def load_spec(name_or_path: str | Path) -> ProjectSpec:
    """A spec by project name (bundled) or by path to a YAML file (cached: specs are frozen)."""
    path = Path(name_or_path)
    if path.suffix not in {".yaml", ".yml"}:
        path = PROJECTS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(list_projects())
        raise SpecError(f"no project spec '{name_or_path}' (bundled projects: {known})")
    try:
        raw = yaml.safe_load(path.read_text())
        return ProjectSpec.model_validate(raw)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from exc
    except ValidationError as exc:
        issues = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise SpecError(f"{path}: invalid spec: {issues}") from exc


def list_projects() -> list[str]:
    return sorted(p.stem for p in PROJECTS_DIR.glob("*.yaml"))
