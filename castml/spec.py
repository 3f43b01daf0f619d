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
    """A feature computed from others, by one function in training and serving alike:
    calendar parts of a datetime (`castml.data.calendar_features`), and, in a forecast
    spec, lags and rolling means over the time-ordered rows of a series
    (`castml.data.lag_features`)."""

    name: str = Field(description="The derived feature's name.")
    kind: Literal["calendar", "lag", "rolling_mean"] = Field(
        "calendar",
        description="calendar: a part of a datetime; lag: a value `lag` rows before the "
        "anchor row; rolling_mean: the mean of the `window` rows ending `lag` rows before "
        "the anchor (lag and rolling_mean: task forecast only).",
    )
    source: str = Field(
        description="calendar: the datetime feature (in a forecast spec, the time_column: "
        "the parts of the time being forecast); lag, rolling_mean: the target or a numeric "
        "feature."
    )
    part: Literal["hour", "day_of_week", "month", "holiday"] | None = Field(
        None,
        description="kind calendar: hour 0-23, day_of_week 0-6 (Monday 0), month 1-12, "
        "holiday 0/1 (UTC).",
    )
    lag: int | None = Field(
        None,
        ge=0,
        description="kind lag (required) and rolling_mean (default 0): rows before the anchor.",
    )
    window: int | None = Field(
        None, ge=1, description="kind rolling_mean: the rows the mean is taken over."
    )
    anchor: Literal["target", "origin"] = Field(
        "target",
        description="lag, rolling_mean: counted back from the row being forecast (target; a "
        "horizon longer than the lag cannot know the value, and that horizon's model goes "
        "without it) or from the forecast origin, the newest row known (origin).",
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
        self._check_kind()
        if (self.part == "holiday") != (self.country is not None):
            raise ValueError(f"derived {self.name}: a country goes with part holiday, and only")
        if self.subdivision is not None and self.country is None:
            raise ValueError(f"derived {self.name}: a subdivision needs a country")
        return self

    def _check_kind(self) -> None:
        given = {k for k in ("part", "lag", "window") if getattr(self, k) is not None}
        needed = {"calendar": {"part"}, "lag": {"lag"}, "rolling_mean": {"window"}}[self.kind]
        allowed = needed | ({"lag"} if self.kind == "rolling_mean" else set())
        absent, extra = sorted(needed - given), sorted(given - allowed)
        if absent or extra:
            raise ValueError(
                f"derived {self.name}: kind {self.kind} needs {', '.join(sorted(needed))}"
                + (f" (missing: {', '.join(absent)})" if absent else "")
                + (f" and takes no {', '.join(extra)}" if extra else "")
            )
        if self.kind == "lag" and self.anchor == "target" and self.lag == 0:
            raise ValueError(f"derived {self.name}: lag 0 from the target is the target itself")


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


class SequenceSpec(_Strict):
    """How rows form streams for a sequence model (`lstm_seq`): each row is scored with
    the `length` rows before it in its stream (`castml.data.sequence_windows`)."""

    keys: list[str] = Field(
        min_length=1,
        description="Features whose values key a stream, e.g. [item_id, position]; each must "
        "be a feature of the spec (so it survives validation and reaches serving).",
    )
    order: str | None = Field(
        None,
        description="The column that orders a stream's rows; absent: the spec's time_column.",
    )
    length: int = Field(8, ge=1, le=128, description="k: the preceding rows each row sees.")
    flattened: bool = Field(
        False,
        description="Set only in the spec a trained lstm_seq model carries: its features "
        "already are the window, flattened (the current row, then each lag), so serving takes "
        "it as one ordinary row and nothing is windowed again.",
    )


class ValidationRules(_Strict):
    min_rows: int = 100
    min_class_rows: int = 10


class Gates(_Strict):
    floors: dict[str, float] = Field(default_factory=dict, description="metric -> minimum")
    max_regression: dict[str, float] = Field(
        default_factory=dict, description="metric -> most it may drop below @champion"
    )
    lower_is_better: list[str] = Field(default_factory=list, description="e.g. rmse, mae")
    min_positives: int = Field(
        0,
        ge=0,
        description="Positives the holdout must hold before the gate trusts the ROC-AUC's "
        "bootstrap CI: a rare-event project (clicks) with fewer is refused as unjudgeable. "
        "0: off.",
    )


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


class ForecastBacktest(_Strict):
    """Rolling-origin backtests over the time-ordered test period (`castml.forecast_backtest`)."""

    windows: int = Field(
        4, ge=1, description="Consecutive windows the origins are cut into (metrics per window)."
    )
    stride: int = Field(1, ge=1, description="Rows between two forecast origins.")


class ForecastSpec(_Strict):
    """A forecast project (task forecast): the series, the horizons and the history they need.

    Features come from each series' own history (derived lag and rolling_mean features,
    calendar parts of the time being forecast); the rows one forecast needs are computed
    from them (`castml.data.lag_features.LagPlan.history_rows`). Skill floors and the
    regression tolerance are the spec's `gates` on the backtest metrics, named
    `<metric>_h<horizon>`: rmse, mae, smape, skill_seasonal (1 - RMSE / RMSE of the same
    time one season back) and skill_naive24 (against the value 24 steps back).
    """

    horizons: list[int] = Field(
        min_length=1, description="Steps ahead to forecast, e.g. [1, 24]; one model each."
    )
    step_seconds: int = Field(3600, gt=0, description="Seconds between two rows of a series.")
    season: int = Field(
        168, ge=1, description="Steps in one season: the seasonal-naive forecast's look-back."
    )
    series_column: str | None = Field(
        None,
        description="A categorical feature naming each row's series; absent: one series.",
    )
    series_name: str = Field(
        "all", min_length=1, description="The one series' name when there is no series_column."
    )
    max_gap: int = Field(
        0,
        ge=0,
        description="Missing rows in a row inside the history window a forecast still "
        "accepts (their features are missing values); a longer gap is refused.",
    )
    relative_to: str | None = Field(
        None,
        description="A derived lag or rolling mean of the target, known at every horizon: "
        "the models learn the (transformed) target minus its (transformed) value, and add it "
        "back on output, so a forecast follows the level that feature carries. Absent: the "
        "models learn the target itself.",
    )
    floor: float | None = Field(
        None,
        description="The lowest value the target can take (0 for counts): a forecast below "
        "it is raised to it. Absent: forecasts are not bounded.",
    )
    backtest: ForecastBacktest = ForecastBacktest()

    @model_validator(mode="after")
    def _horizons(self) -> ForecastSpec:
        if any(h < 1 for h in self.horizons) or self.horizons != sorted(set(self.horizons)):
            raise ValueError("forecast.horizons must be distinct steps >= 1, ascending")
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
    forecast: ForecastSpec | None = Field(
        None, description="Task forecast: horizons, series and history (castml.forecast_*)."
    )
    sequence: SequenceSpec | None = Field(
        None,
        description="Streams of rows for a sequence model (model family lstm_seq): keys, "
        "order and window length.",
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
        if self.target_transform != "none" and self.task not in (Task.REGRESSION, Task.FORECAST):
            raise ValueError(f"target_transform {self.target_transform} applies to regression only")
        used = {*names, *(f.source_column for f in self.features), self.target}
        overlap = sorted(used & set(self.ignore))
        if overlap:
            raise ValueError(f"ignore lists used columns: {', '.join(overlap)}")
        if self.time_column is not None and self.time_column in self.ignore:
            raise ValueError(f"time_column '{self.time_column}' is also ignored")
        self._check_split()
        self._check_derived()
        self._check_forecast()
        self._check_sequence()
        return self

    def _check_sequence(self) -> None:
        seq = self.sequence
        families = set(self.model.families)
        if seq is None:
            if "lstm_seq" in families:
                raise ValueError(
                    "model family lstm_seq needs sequence: {keys: [stream key features], "
                    "length: k} (and a time_column or sequence.order to order the rows)"
                )
            return
        if families != {"lstm_seq"}:
            raise ValueError(
                "sequence applies to model family lstm_seq only (as the one family, "
                f"not among candidates): got {', '.join(sorted(families))}"
            )
        if seq.flattened:
            return
        names = self.feature_names
        unknown = [k for k in seq.keys if k not in names]
        if unknown:
            raise ValueError(
                f"sequence.keys {', '.join(unknown)} must be features of the spec "
                "(add them under features:)"
            )
        order = seq.order or self.time_column
        if order is None:
            raise ValueError("sequence needs an order: set sequence.order or time_column")
        if order not in (*names, self.time_column):
            raise ValueError(
                f"sequence.order '{order}' must be the time_column or a feature of the spec"
            )
        if self.derived:
            raise ValueError(
                "sequence with derived features is not supported yet: give the calendar "
                "parts as columns of the data (e.g. hour as an int feature)"
            )

    def _check_forecast(self) -> None:
        families = set(self.model.families)
        lagged = [d.name for d in self.derived if d.kind != "calendar"]
        if self.task is not Task.FORECAST:
            if self.forecast is not None or "forecast" in families or lagged:
                raise ValueError(
                    "forecast:, model family forecast and lag/rolling_mean derived features "
                    f"({', '.join(lagged) or 'none here'}) apply to task forecast only"
                )
            return
        if self.forecast is None:
            raise ValueError("task forecast needs forecast: {horizons: [1, ...]}")
        if families != {"forecast"}:
            raise ValueError("task forecast needs model.family forecast (and no other candidate)")
        if self.time_column is None or self.time_column in self.feature_names:
            raise ValueError(
                "task forecast needs a time_column that is not a feature (the model sees the "
                "time through calendar parts)"
            )
        if self.split.kind not in (None, "time"):
            raise ValueError("task forecast needs the time split (split.kind: time or absent)")
        numeric = {f.name for f in self.features if f.is_numeric} | {self.target}
        for derived in self.derived:
            if derived.kind == "calendar" and derived.source != self.time_column:
                raise ValueError(
                    f"derived {derived.name}: a forecast's calendar parts are of the "
                    f"time_column '{self.time_column}' (the time being forecast)"
                )
            if derived.kind != "calendar" and derived.source not in numeric:
                raise ValueError(
                    f"derived {derived.name}: source '{derived.source}' must be the target or "
                    "a numeric feature"
                )
        if not lagged:
            raise ValueError("task forecast needs at least one lag or rolling_mean feature")
        relative = self.forecast.relative_to
        if relative is not None:
            base = next((d for d in self.derived if d.name == relative), None)
            longest = max(self.forecast.horizons)
            known = base is not None and (base.anchor == "origin" or (base.lag or 0) >= longest)
            if base is None or base.kind == "calendar" or base.source != self.target or not known:
                raise ValueError(
                    f"forecast.relative_to '{relative}' must be a lag or rolling_mean of the "
                    f"target known at every horizon (anchor origin, or lag >= {longest})"
                )
        series = self.forecast.series_column
        kinds = {f.name: f.dtype for f in self.features}
        if series is not None and kinds.get(series) != "categorical":
            raise ValueError(f"forecast.series_column '{series}' must be a categorical feature")

    def _check_derived(self) -> None:
        types = {f.name: f.dtype for f in self.features}
        names = [*types, self.target, *(d.name for d in self.derived)]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"derived features reuse names: {', '.join(dupes)}")
        for derived in self.derived:
            if derived.kind != "calendar" or self.task is Task.FORECAST:
                continue  # lags, rolling means and a forecast's calendar: _check_forecast
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
