"""Project specs: `castml/projects/<name>.yaml` describes a data set and its model.

A new tabular project (CSV, Parquet, a bundled scikit-learn data set or a file inside an
installed package; binary classification or regression) needs only a new spec file, never
new code. Features are typed (float, int, bool, categorical, datetime), each with a policy
for a missing value and, for a categorical, for an unknown category; columns the data holds
beyond the features and the target are named under `ignore`.
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
    FORECAST = "forecast"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


FeatureType = Literal["float", "int", "bool", "categorical", "datetime"]
NUMERIC_TYPES = frozenset({"float", "int"})


class Feature(_Strict):
    # `bounds` is stored as `declared_bounds` so that `.bounds` can stay a plain pair for
    # the numeric features every server and monitor reads it on (see the property).
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    name: str = Field(description="Feature name as served and logged.")
    column: str | None = Field(None, description="Source column, when it differs from `name`.")
    dtype: FeatureType = Field(
        "float", description="float, int, bool, categorical or datetime (ISO 8601, UTC)."
    )
    unit: str = Field("", description="Physical unit, for docs and reports.")
    declared_bounds: tuple[float, float] | None = Field(
        None,
        alias="bounds",
        description="Hard physical bounds; outside is an error. Required for float and int.",
    )
    normal: tuple[float, float] | None = Field(None, description="Normal operating range.")
    categories: list[str] | None = Field(
        None,
        description="Categorical only: the vocabulary. Absent: learned from the training data.",
    )
    unknown: Literal["refuse", "other"] = Field(
        "refuse",
        description="Categorical only: a category outside the vocabulary is refused (an "
        "error naming the feature and the value) or mapped to one shared 'other' code.",
    )
    missing: Literal["refuse", "impute"] = Field(
        "refuse",
        description="A missing value is refused (an error naming the feature) or imputed.",
    )
    impute: float | str | None = Field(
        None,
        description="With missing: impute, the value a missing one gets. Absent: learned in "
        "training (median for numeric and datetime, most frequent for categorical and bool).",
    )
    description: str = ""

    @property
    def source_column(self) -> str:
        return self.column or self.name

    @property
    def is_numeric(self) -> bool:
        return self.dtype in NUMERIC_TYPES

    @property
    def bounds(self) -> tuple[float, float]:
        """The physical bounds of a float or int feature (which always has them)."""
        if self.declared_bounds is None:
            raise SpecError(f"feature {self.name}: a {self.dtype} feature has no bounds")
        return self.declared_bounds

    @model_validator(mode="after")
    def _consistent(self) -> Feature:
        if self.is_numeric:
            self._check_bounds()
        elif self.declared_bounds is not None or self.normal is not None:
            raise ValueError(
                f"feature {self.name}: bounds and normal apply to float and int features only"
            )
        if self.dtype != "categorical" and (
            self.categories is not None or self.unknown != "refuse"
        ):
            raise ValueError(
                f"feature {self.name}: categories and unknown apply to categorical features only"
            )
        if self.categories is not None:
            self._check_categories(self.categories)
        if self.impute is not None:
            self._check_impute(self.impute)
        return self

    def _check_bounds(self) -> None:
        if self.declared_bounds is None:
            raise ValueError(
                f"feature {self.name}: a {self.dtype} feature needs bounds: [low, high]"
            )
        lo, hi = self.declared_bounds
        if not lo < hi:
            raise ValueError(f"feature {self.name}: bounds must be [low, high] with low < high")
        if self.normal is not None and not lo <= self.normal[0] < self.normal[1] <= hi:
            raise ValueError(f"feature {self.name}: normal range must lie inside the bounds")

    def _check_categories(self, categories: list[str]) -> None:
        dupes = sorted({c for c in categories if categories.count(c) > 1})
        if not categories or dupes:
            raise ValueError(
                f"feature {self.name}: categories must be a non-empty list without duplicates"
                + (f" (repeated: {', '.join(dupes)})" if dupes else "")
            )

    def _check_impute(self, value: float | str) -> None:
        if self.missing != "impute":
            raise ValueError(f"feature {self.name}: impute needs missing: impute")
        if self.dtype == "categorical":
            if not isinstance(value, str):
                raise ValueError(f"feature {self.name}: impute must be one of its categories")
            if self.categories is not None and value not in self.categories:
                raise ValueError(
                    f"feature {self.name}: impute value '{value}' is not one of its categories"
                )
        elif self.dtype == "datetime":
            if not isinstance(value, str):
                raise ValueError(f"feature {self.name}: impute must be an ISO 8601 datetime")
        elif isinstance(value, str):
            raise ValueError(f"feature {self.name}: impute must be a number for a {self.dtype}")
        elif self.is_numeric and not self.bounds[0] <= value <= self.bounds[1]:
            raise ValueError(f"feature {self.name}: impute value {value} is outside the bounds")
        elif self.dtype == "bool" and value not in (0, 1):
            raise ValueError(f"feature {self.name}: impute must be 0 or 1 for a bool")


class DerivedFeature(_Strict):
    """A feature computed from another, by one function in training and serving alike
    (`castml.data.calendar_features`): today the calendar parts of a datetime feature."""

    name: str = Field(description="The derived feature's name.")
    kind: Literal["calendar"] = Field("calendar", description="How it is derived.")
    source: str = Field(description="The datetime feature it is computed from.")
    part: Literal["hour", "day_of_week", "month", "holiday"] = Field(
        description="hour 0-23, day_of_week 0-6 (Monday 0), month 1-12, holiday 0/1 (UTC)."
    )
    country: str | None = Field(
        None,
        pattern=r"^[A-Z]{2,3}$",
        description="part holiday: the country's ISO code, for the `holidays` package.",
    )
    subdivision: str | None = Field(
        None, description="part holiday: a state or province code, e.g. CA."
    )

    @model_validator(mode="after")
    def _holiday_country(self) -> DerivedFeature:
        if (self.part == "holiday") != (self.country is not None):
            raise ValueError(f"derived {self.name}: a country goes with part holiday, and only")
        if self.subdivision is not None and self.country is None:
            raise ValueError(f"derived {self.name}: a subdivision needs a country")
        return self


class Source(_Strict):
    kind: Literal["generator", "csv", "parquet", "sklearn", "package_file"]
    generator: str | None = Field(None, description="Generator name for kind=generator.")
    path: str | None = Field(
        None,
        description="File path for kind=csv/parquet; for kind=package_file, the path relative "
        "to the package's directory.",
    )
    package: str | None = Field(
        None,
        description="kind=package_file: the installed package holding the file (found "
        "without importing it).",
    )
    dataset: str | None = Field(None, description="scikit-learn loader name, e.g. breast_cancer.")
    rows: int | None = Field(None, description="Rows to generate (kind=generator).")
    seed: int = 0
    format: Literal["csv", "parquet"] | None = Field(
        None, description="File format; absent: from the suffix (.csv, .csv.gz, .parquet)."
    )
    compression: Literal["infer", "gzip", "none"] = Field(
        "infer", description="CSV compression; infer: gzip for a .gz suffix."
    )
    header: bool = Field(True, description="CSV: the first row holds the column names.")
    columns: list[str] | None = Field(
        None,
        description="CSV: the column names, in file order (required when header is false; "
        "with a header they replace its names).",
    )
    na_values: list[str] = Field(
        default_factory=list, description="CSV: extra strings that mean a missing value, e.g. ?."
    )
    skipinitialspace: bool = Field(False, description="CSV: skip spaces after each delimiter.")
    sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="The file's SHA-256 (hex); checked on every read.",
    )

    @model_validator(mode="after")
    def _complete(self) -> Source:
        needed = {
            "generator": ("generator",),
            "csv": ("path",),
            "parquet": ("path",),
            "sklearn": ("dataset",),
            "package_file": ("package", "path"),
        }
        for field in needed[self.kind]:
            if getattr(self, field) is None:
                raise ValueError(f"source kind '{self.kind}' needs '{field}'")
        if not self.header and not self.columns:
            raise ValueError("a source with header: false needs columns: [names, in file order]")
        if self.sha256 is not None and self.kind in {"generator", "sklearn"}:
            raise ValueError(f"sha256 applies to files, not to source kind '{self.kind}'")
        return self


class Split(_Strict):
    kind: Literal["random", "stratified", "time"] | None = Field(
        None,
        description="Absent: time when the spec has a time_column, stratified for binary "
        "classification, random for regression (see ProjectSpec.split_kind).",
    )
    test: float = Field(0.2, gt=0, lt=0.5)
    validation: float = Field(0.2, gt=0, lt=0.5)
    seed: int = 0


FamilyName = Literal["ae_gbm", "gbm", "xgboost", "forecast", "lstm_seq"]
# The parameter blocks each family reads from `params` (one block may serve several).
FAMILY_BLOCKS: dict[str, tuple[str, ...]] = {
    "ae_gbm": ("autoencoder", "gbm"),
    "gbm": ("gbm",),
    "xgboost": ("xgboost",),
    "forecast": ("forecast",),
    "lstm_seq": ("lstm_seq",),
}


class ModelSpec(_Strict):
    family: FamilyName = Field(
        "ae_gbm",
        description="The model family: ae_gbm (AutoEncoder + LightGBM, float features only), "
        "gbm (LightGBM, native categoricals) or xgboost (XGBoost, native categoricals). "
        "With candidates, the one that wins a tie on validation.",
    )
    candidates: list[FamilyName] = Field(
        default_factory=list,
        description="Families to train side by side; the best on validation goes forward, "
        "the others' validation scores are logged as evidence. Empty: `family` alone.",
    )
    params: dict[str, dict[str, Any]] = Field(
        description="Hyper-parameter blocks: ae_gbm reads autoencoder and gbm, gbm reads gbm, "
        "xgboost reads xgboost."
    )
    profiles: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)
    seed: int = 0

    @model_validator(mode="after")
    def _families(self) -> ModelSpec:
        if self.candidates:
            repeated = sorted({c for c in self.candidates if self.candidates.count(c) > 1})
            if repeated:
                raise ValueError(f"model.candidates repeats {', '.join(repeated)}")
            if self.family not in self.candidates:
                raise ValueError(
                    f"model.family {self.family} must be one of model.candidates "
                    f"({', '.join(self.candidates)}): it breaks ties"
                )
        return self

    def missing_blocks(self) -> list[str]:
        """`family: block` for each parameter block a family to train needs and `params` lacks
        (checked when training starts, so a spec can be validated before it has params)."""
        return [
            f"{family}: {block}"
            for family in self.families
            for block in FAMILY_BLOCKS[family]
            if block not in self.params
        ]

    @property
    def families(self) -> list[str]:
        """The families to train: the candidates, or the one family."""
        return list(self.candidates) if self.candidates else [self.family]

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


class KnowledgeSpec(_Strict):
    """The project's knowledge base (T3): how its index is built and gated.

    Metric names are `<retriever>.<metric>` as the knowledge pipeline logs them, e.g.
    `hybrid_rescored.ndcg_at_10` (retrievers: bm25, dense, hybrid, hybrid_rescored).
    """

    embedding_model: Literal["e5", "wordllama"] = Field(
        "e5", description="Dense vectors: e5 (multilingual-e5-small) or wordllama."
    )
    chunk_max_chars: int = Field(900, gt=0, description="Longest chunk, in characters.")
    chunk_overlap: int = Field(150, ge=0, description="Characters two windows share.")
    floors: dict[str, float] = Field(default_factory=dict, description="metric -> minimum")
    max_regression: dict[str, float] = Field(
        default_factory=dict, description="metric -> most it may drop below @champion"
    )

    @model_validator(mode="after")
    def _windows(self) -> KnowledgeSpec:
        if self.chunk_overlap >= self.chunk_max_chars:
            raise ValueError("knowledge.chunk_overlap must be smaller than chunk_max_chars")
        return self


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
    target_labels: tuple[str, str] | None = Field(
        None,
        description="Binary classification with a text target: its [negative, positive] "
        "values in the data, mapped to 0 and 1. Any other value is a validation error.",
    )
    target_transform: Literal["none", "log1p"] = Field(
        "none", description="Regression: the model learns f(target), outputs are inverted."
    )
    source: Source
    features: list[Feature]
    derived: list[DerivedFeature] = Field(
        default_factory=list,
        description="Features computed from others (calendar parts of a datetime), placed "
        "after `features` in the design matrix.",
    )
    ignore: list[str] = Field(
        default_factory=list,
        description="Data columns that are neither features nor the target, dropped on load.",
    )
    time_column: str | None = Field(
        None,
        description="The column that orders rows in time (a datetime feature's name, or a "
        "data column kept for the split); makes the split time-ordered by default.",
    )
    split: Split = Split()
    model: ModelSpec
    validation: ValidationRules = ValidationRules()
    gates: Gates = Gates()
    monitoring: Monitoring = Monitoring()
    retrain: Retrain = Retrain()
    knowledge: KnowledgeSpec | None = Field(
        None, description="The knowledge base built from the project's documents (T3)."
    )

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
        if self.task is not Task.BINARY and self.target_labels is not None:
            raise ValueError("target_labels apply to binary_classification only")
        if self.target_labels is not None and self.target_labels[0] == self.target_labels[1]:
            raise ValueError("target_labels must be two different values: [negative, positive]")
        if self.target_transform != "none" and self.task is not Task.REGRESSION:
            raise ValueError(f"target_transform {self.target_transform} applies to regression only")
        used = {*names, *(f.source_column for f in self.features), self.target}
        overlap = sorted(used & set(self.ignore))
        if overlap:
            raise ValueError(f"ignore lists used columns: {', '.join(overlap)}")
        if self.time_column is not None and self.time_column in self.ignore:
            raise ValueError(f"time_column '{self.time_column}' is also ignored")
        self._check_split()
        self._check_derived()
        return self

    def _check_derived(self) -> None:
        types = {f.name: f.dtype for f in self.features}
        names = [*types, self.target, *(d.name for d in self.derived)]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"derived features reuse names: {', '.join(dupes)}")
        for derived in self.derived:
            if types.get(derived.source) != "datetime":
                raise ValueError(
                    f"derived {derived.name}: source '{derived.source}' must be a datetime"
                    " feature of this spec"
                )

    def _check_split(self) -> None:
        kind = self.split.kind
        if kind == "time" and self.time_column is None:
            raise ValueError("split kind time needs a time_column")
        if kind == "stratified" and self.task is not Task.BINARY:
            raise ValueError("split kind stratified applies to binary_classification only")
        time_feature = next((f for f in self.features if f.name == self.time_column), None)
        if time_feature is not None and time_feature.dtype not in {"datetime", "int", "float"}:
            raise ValueError(f"time_column '{self.time_column}' must be a datetime or number")

    @property
    def split_kind(self) -> Literal["random", "stratified", "time"]:
        """The split actually used: the spec's `split.kind`, or the default for this spec."""
        declared = self.split.kind
        if declared is not None:
            return declared
        if self.time_column is not None:
            return "time"
        return "stratified" if self.task is Task.BINARY else "random"

    @property
    def data_columns(self) -> list[str]:
        """The columns a loaded (renamed) frame keeps: features, the time column, the target."""
        time = self.time_column
        extra = [time] if time is not None and time not in self.feature_names else []
        return [*self.feature_names, *extra, self.target]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def model_input_names(self) -> list[str]:
        """The design matrix's columns: the features, then the derived features."""
        return [*self.feature_names, *(d.name for d in self.derived)]

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
