"""Train the `lstm_seq` family: `TabularSeqModel` on each row's window of its stream.

The window comes from the one function serving's clients mirror
(`castml.data.sequence_windows`): the current row, then its stream's k previous rows
with their labels. The flattened window is encoded by an `EncodingState` fitted on the
train split (vocabularies, imputed values for lags a short stream lacks; a feature's k
lags share one fit, on the feature's column: `fit_windows`), expanded by
the numpy code that serves (`castml.runtime.lstm_seq_model.expand`), and the network is
trained with PyTorch. Every epoch is reported through `on_epoch` with `EPOCH_METRICS`
(+ `val_roc_auc`); the weights of the best epoch on validation loss are kept.

The baselines, on the same windows but the current row alone: LightGBM (the baseline
evaluation reports; `baseline_dir`) and logistic regression (`baseline_dir/more/`).

Params block `lstm_seq`: epochs, batch_size, learning_rate, lstm_hidden, mlp_hidden (an
int or a list of widths), dropout; optional weight_decay (0), patience (0: no early
stop), seed, threads (1: torch's, LightGBM's and BLAS's threads; `training_threads`).

Training is numpy from the frames to the tensors (no windowed DataFrame; the lags are
gathered from the encoded current rows, `encode_windows`), and the loop reads nothing
back per batch: bench/ctr_model.py holds it to 0.8x of a bare PyTorch loop over the
same tensors.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from castml.data.sequence_windows import (
    absent_value,
    base_columns,
    flattened_spec,
    is_windowed,
    lag_extras,
    lag_index,
    lag_name,
    window_columns,
)
from castml.data.tabular_encoding import EncodingError, EncodingState, fit_columns
from castml.models.holdout_metrics import tune_threshold
from castml.models.train import EXTRA_BASELINES_DIR, EpochCallback, report_epoch
from castml.runtime.lstm_seq_model import (
    BASELINE_GBM_FILE,
    EXTRAS_PER_LAG,
    WEIGHTS_FILE,
    SeqLayout,
    expand,
    expand_rows,
)
from castml.runtime.manifest import Manifest
from castml.runtime.model_bundle import (
    ENCODING_FILE,
    SPEC_FILE,
    write_encoding,
    write_spec,
    write_target_transform,
)
from castml.spec import ProjectSpec

BASELINE_GBM = {
    "objective": "binary",
    "num_leaves": 15,
    "learning_rate": 0.05,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.9,
    "deterministic": True,
    "verbose": -1,
}
BASELINE_ROUNDS = 300


@dataclass(frozen=True)
class SeqData:
    """Both splits as the network and the baselines take them."""

    spec: ProjectSpec  # the flattened spec, which the model carries
    state: EncodingState
    layout: SeqLayout
    design_train: np.ndarray  # encoded windows, float32
    design_validation: np.ndarray
    y_train: np.ndarray
    y_validation: np.ndarray


def layout_for(spec: ProjectSpec, state: EncodingState, design: np.ndarray) -> SeqLayout:
    """One-hot sizes and standardisation, learned from the encoded train windows."""
    assert spec.sequence is not None
    r, k = len(spec.features), spec.sequence.length
    onehot, mean, scale = [], [], []
    for index, feature in enumerate(state.features[:r]):
        if feature.dtype == "categorical":
            onehot.append(len(feature.vocabulary) + 1)
            mean.append(0.0)
            scale.append(1.0)
        else:
            column = design[:, index].astype(np.float64)
            onehot.append(0)
            mean.append(float(column.mean()))
            scale.append(float(column.std()) or 1.0)
    ages = design[:, r:].reshape(len(design), k, r + EXTRAS_PER_LAG)[:, :, r + 2]
    return SeqLayout(
        kind="lstm",
        features=r,
        length=k,
        onehot=onehot,
        mean=mean,
        scale=scale,
        age_mean=float(ages.mean()),
        age_scale=float(ages.std()) or 1.0,
    )


ENCODE_BLOCK_ROWS = 4096
# Validation rows per forward pass: an LSTM step's gates for 2,048 rows stay in the cache,
# for 12,000 they do not (an epoch's validation took 1.5x as long in one pass).
VALIDATION_BLOCK_ROWS = 2048


def encode_blocks(state: EncodingState, columns: dict[str, np.ndarray]) -> np.ndarray:
    """`state.encode(columns, float32)`, a block of rows at a time: the encoder writes
    column by column into a row-major matrix, and a block of ~100 columns stays in the
    cache (2.5x faster on a 36,000-row window here; the same values, element by element).
    A refusal is raised by one encode of all rows, so that its counts are the whole's."""
    rows = len(next(iter(columns.values()))) if columns else 0
    if rows <= ENCODE_BLOCK_ROWS:
        return state.encode(columns, np.float32)
    try:
        step = ENCODE_BLOCK_ROWS
        blocks = [
            state.encode({k: v[at : at + step] for k, v in columns.items()}, np.float32)
            for at in range(0, rows, step)
        ]
    except EncodingError:
        return state.encode(columns, np.float32)  # raises, naming every problem at once
    return np.concatenate(blocks)


@dataclass(frozen=True)
class Windows:
    """A split's windows before encoding.

    Built here: the current row's features (as the encoder reads them), each lag's
    extras (label, presence, age) and the lag rows (`lag_index`), the lags' own columns
    never built. A frame windowed upstream (`with_windows`: its lags reach into other
    splits), a spec with derived columns or an empty frame: every window column."""

    frame: pd.DataFrame
    base: dict[str, np.ndarray]
    extras: dict[str, np.ndarray]  # lag_extras' columns (or every window column)
    index: np.ndarray | None  # [N, k]: the row of each lag, -1 if none
    columns: dict[str, np.ndarray] | None  # set, and index None, for the whole window


def windows(frame: pd.DataFrame, spec: ProjectSpec) -> Windows:
    if is_windowed(frame, spec) or spec.derived or not len(frame):
        columns = window_columns(frame, spec)
        base = {f.name: columns[f.name] for f in spec.features}
        return Windows(frame, base, columns, None, columns)
    index, extras = lag_index(frame, spec)
    return Windows(frame, base_columns(frame, spec), extras, index, None)


def extras_by_lag(spec: ProjectSpec) -> list[list[str]]:
    """Each lag's extras' names (`lag_extras`), lag 1 first."""
    assert spec.sequence is not None
    return [lag_extras(spec, lag) for lag in range(1, spec.sequence.length + 1)]


def fit_windows(w: Windows, spec: ProjectSpec, flat: ProjectSpec) -> EncodingState:
    """The flattened window's `EncodingState`, each feature's lags fitted once, on the
    feature's own column, and shared by its k lags.

    A lag column holds its feature's values from earlier rows of the stream, so the
    feature's column is what its vocabulary and fill are learned from: the same codes in
    the current row and in every lag (the network's one-hot layout, `layout_for`, is the
    current row's for all of them), and one fit instead of k (0.18 s of the ctr bench's
    36,000-row train step; its fills moved by noise only: a noise column's median, 1e-3).
    Each lag keeps a `FeatureEncoding` under its own name in the state, and so in the
    model's `encoding.json`: serving encodes with exactly this fit, unchanged."""
    r, by_lag = len(spec.features), extras_by_lag(spec)
    lag1 = flat.features[r : 2 * r]
    extra_names = {name for names in by_lag for name in names}
    fitted = fit_columns(
        {
            **w.base,
            **{f.name: w.base[b.name] for f, b in zip(lag1, spec.features, strict=True)},
            **{name: w.extras[name] for name in extra_names},
        },
        flat.model_copy(
            update={
                "features": [
                    *flat.features[: 2 * r],
                    *(f for f in flat.features if f.name in extra_names),
                ]
            }
        ),
    )
    by_name = {f.name: f for f in fitted.features}
    features = [by_name[f.name] for f in spec.features]
    for lag, names in enumerate(by_lag, start=1):
        features += [
            replace(by_name[lag_name(f.name, 1)], name=lag_name(f.name, lag)) for f in spec.features
        ]
        features += [by_name[name] for name in names]
    state = EncodingState(tuple(features), fitted.derived)
    assert state.names == flat.feature_names  # the window's order, which serving reads
    return state


def encode_windows(state: EncodingState, w: Windows, spec: ProjectSpec) -> np.ndarray:
    """The encoded windows, float32 `[N, r + k (r + 3)]`: `encode_blocks` of the window
    columns, element for element (tests/unit/test_lstm_seq_window_encoding.py).

    From the lag rows: each feature's column is encoded once by its lags' (shared)
    encoding, with one element more for a lag the stream lacks, and each lag's columns
    are a gather of those codes: the k copies of the text columns are neither built nor
    searched (0.3 s of the ctr bench's train step). A refusal goes through the whole
    window's encode, which names every problem with its counts."""
    if w.index is None:
        assert w.columns is not None
        return encode_blocks(state, w.columns)
    r, n = len(spec.features), len(w.index)
    width = r + EXTRAS_PER_LAG
    lagged = EncodingState(state.features[r : 2 * r])
    try:
        codes = lagged.encode(
            {
                f.name: np.concatenate([w.base[b.name], absent_value(w.base[b.name])])
                for f, b in zip(lagged.features, spec.features, strict=True)
            },
            np.float32,
        )
        out = np.empty((n, len(state.features)), dtype=np.float32)
        out[:, :r] = EncodingState(state.features[:r]).encode(w.base, np.float32)
        extras = EncodingState(tuple(f for f in state.features if f.name in w.extras))
        extra = extras.encode(w.extras, np.float32)  # lag 1's three columns, lag 2's, ...
    except EncodingError:
        return encode_blocks(state, window_columns(w.frame, spec))  # raises, naming all
    for lag in range(w.index.shape[1]):
        at, rows = r + lag * width, w.index[:, lag]
        out[:, at : at + r] = codes[np.where(rows >= 0, rows, n)]  # row n: no such lag
        out[:, at + r : at + width] = extra[:, lag * EXTRAS_PER_LAG : (lag + 1) * EXTRAS_PER_LAG]
    return out


def prepare(
    spec: ProjectSpec, train_frame: pd.DataFrame, validation_frame: pd.DataFrame
) -> SeqData:
    """Windows, encoding and layout of both splits: numpy from the frames on, no
    windowed DataFrame."""
    flat = flattened_spec(spec)
    train_windows = windows(train_frame, spec)
    state = fit_windows(train_windows, spec, flat)
    design_train = encode_windows(state, train_windows, spec)
    del train_windows
    design_validation = encode_windows(state, windows(validation_frame, spec), spec)
    return SeqData(
        spec=flat,
        state=state,
        layout=layout_for(spec, state, design_train),
        design_train=design_train,
        design_validation=design_validation,
        y_train=train_frame[spec.target].to_numpy(np.float32),
        y_validation=validation_frame[spec.target].to_numpy(np.float32),
    )


def hidden_sizes(value: Any) -> list[int]:
    """`mlp_hidden` as layer widths: an int is one layer."""
    if isinstance(value, int | float):
        return [int(value)]
    return [int(v) for v in value]


def build_network(layout: SeqLayout, p: dict[str, Any]) -> Any:
    from castml.models.tabular_seq_net import TabularSeqModel

    return TabularSeqModel(
        layout.width + EXTRAS_PER_LAG,
        layout.width,
        int(p["lstm_hidden"]),
        hidden_sizes(p["mlp_hidden"]),
        float(p["dropout"]),
    )


def training_threads(p: dict[str, Any]) -> int:
    """Torch's intra-op threads for training: `threads` in the params block, default 1.

    A batch of this network is many small ops; a second thread saved about a tenth on an
    idle machine, and on a shared or CPU-limited node threads that wait on each other
    made an epoch ten times slower and more (the ctr spec's 36,000 train rows).
    """
    return max(1, int(p.get("threads", 1)))


def fit_network(
    data: SeqData, p: dict[str, Any], seed: int, on_epoch: EpochCallback | None = None
) -> tuple[Any, list[float], list[dict[str, float]]]:
    """Train; returns (the network at its best validation loss, train loss per epoch,
    each epoch's metrics as reported)."""
    net, history, reports, _ = _fit(data, p, seed, on_epoch)
    return net, history, reports


def _fit(
    data: SeqData, p: dict[str, Any], seed: int, on_epoch: EpochCallback | None
) -> tuple[Any, list[float], list[dict[str, float]], np.ndarray | None]:
    """`fit_network`, and the best epoch's validation scores (the threshold's input;
    None when no epoch improved on the starting weights)."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(training_threads(p))
    current, steps = (torch.from_numpy(a) for a in expand(data.design_train, data.layout))
    val_current, val_steps = (
        torch.from_numpy(a) for a in expand(data.design_validation, data.layout)
    )
    y, y_val = torch.from_numpy(data.y_train), torch.from_numpy(data.y_validation)
    net = build_network(data.layout, p)
    # Fused: Adam's update for all parameters in one kernel per step, not a dozen small
    # ops per parameter (the same update; a tenth of a step's time at this size).
    optimiser = torch.optim.Adam(
        net.parameters(),
        lr=float(p["learning_rate"]),
        weight_decay=float(p.get("weight_decay", 0)),
        fused=True,
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(seed)
    batch, epochs, patience = int(p["batch_size"]), int(p["epochs"]), int(p.get("patience", 0))
    two_classes = len(np.unique(data.y_validation)) == 2
    history: list[float] = []
    reports: list[dict[str, float]] = []
    best_loss, since_best = np.inf, 0
    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    best_score: np.ndarray | None = None  # None: no epoch improved on the start
    starts = range(0, len(y), batch)
    sizes = torch.tensor([min(batch, len(y) - s) for s in starts], dtype=torch.float64)
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(y), generator=generator)
        # Each batch's loss and logits are kept, not read: the epoch's train loss and
        # accuracy are computed once at its end (no float() and no sums per batch).
        losses, seen = [], []
        for start in starts:
            # index_select, not steps[idx]: the same rows, copied as whole rows rather
            # than element by element by the general indexing kernel (a third of the
            # time: 15-20 ms of a ctr epoch).
            idx = order[start : start + batch]
            logits = net(steps.index_select(0, idx), current.index_select(0, idx))
            loss = loss_fn(logits, y.index_select(0, idx))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.detach())
            seen.append(logits.detach())
        total = float((torch.stack(losses).double() * sizes).sum())
        right = int(((torch.cat(seen) > 0) == (y.index_select(0, order) > 0.5)).sum())
        net.eval()
        with torch.inference_mode():
            val_logits = torch.cat(
                [
                    net(
                        val_steps[at : at + VALIDATION_BLOCK_ROWS],
                        val_current[at : at + VALIDATION_BLOCK_ROWS],
                    )
                    for at in range(0, max(len(y_val), 1), VALIDATION_BLOCK_ROWS)
                ]
            )
            val_loss = float(loss_fn(val_logits, y_val))
            val_right = int(((val_logits > 0) == (y_val > 0.5)).sum())
            val_score = torch.sigmoid(val_logits).numpy().astype(np.float64)
        metrics = {
            "train_loss": total / len(y),
            "val_loss": val_loss,
            "train_accuracy": right / len(y),
            "val_accuracy": val_right / len(y_val) if len(y_val) else float("nan"),
            "val_roc_auc": roc_auc(data.y_validation, val_score) if two_classes else float("nan"),
        }
        history.append(metrics["train_loss"])
        reports.append(metrics)
        report_epoch(on_epoch, epoch + 1, epochs, metrics["train_loss"], metrics)
        if val_loss < best_loss:
            best_loss, since_best, best_score = val_loss, 0, val_score
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            since_best += 1
            if patience and since_best >= patience:
                break
    net.load_state_dict(best_state)
    net.eval()
    return net, history, reports, best_score


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC of `score` for 0/1 labels `y`, both classes present: the Mann-Whitney
    statistic (midranks: a tie counts one half), sklearn's `roc_auc_score` to rounding.
    Every epoch reports it: one ranking, where sklearn's checks and curve took 3-7 ms of
    each ctr epoch."""
    from scipy.stats import rankdata

    positive = np.asarray(y) > 0.5
    pos = int(positive.sum())
    ranks = rankdata(score)
    return float((ranks[positive].sum() - pos * (pos + 1) / 2) / (pos * (len(positive) - pos)))


def _write_common(
    directory: Path,
    data: SeqData,
    layout: SeqLayout,
    validation_score: np.ndarray,
    like: Path | None = None,
) -> None:
    """Manifest, layout, encoding and spec; the last two copied from `like` when given
    (the same files for the network and its baselines: rendered once, the spec's YAML of
    a long window takes a tenth of a second)."""
    directory.mkdir(parents=True, exist_ok=True)
    spec = data.spec
    Manifest(
        project=spec.name,
        task=str(spec.task),
        features=data.state.columns,
        latent_dim=0,
        threshold=tune_threshold(data.y_validation, validation_score),
        class_names=list(spec.class_names) if spec.class_names else None,
        family="lstm_seq",
    ).write(directory)
    layout.write(directory)
    write_target_transform(directory, "none")
    if like is None:
        write_encoding(directory, data.state)
        write_spec(directory, spec)
    else:
        for name in (ENCODING_FILE, SPEC_FILE):
            shutil.copyfile(like / name, directory / name)


def save_network(
    net: Any, data: SeqData, model_dir: Path, validation_score: np.ndarray | None = None
) -> None:
    """The network's weights and files; `validation_score`: its scores on the validation
    split when known already (training has them from its best epoch)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    np.savez(model_dir / WEIGHTS_FILE, **net.export())
    if validation_score is None:
        import torch

        current, steps = (torch.from_numpy(a) for a in expand(data.design_validation, data.layout))
        with torch.no_grad():
            validation_score = torch.sigmoid(net(steps, current)).numpy().astype(np.float64)
    _write_common(model_dir, data, data.layout, validation_score)


def train_baselines(
    data: SeqData, baseline_dir: Path, seed: int, like: Path | None = None, threads: int = 1
) -> None:
    """LightGBM (into `baseline_dir`) and logistic regression (`more/logistic_regression`),
    both on the current row only: what the sequence adds is measured against them.
    `like`: a directory whose encoding and spec files they share (`_write_common`);
    `threads`: LightGBM's and BLAS's (`training_threads`: the same reasons hold for
    models of the current row's few columns)."""
    import lightgbm as lgb
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    r = data.layout.features
    categorical = [i for i, size in enumerate(data.layout.onehot) if size]
    x_train, x_val = data.design_train[:, :r], data.design_validation[:, :r]
    train_set = lgb.Dataset(x_train, label=data.y_train, categorical_feature=categorical)
    valid_set = lgb.Dataset(x_val, label=data.y_validation, reference=train_set)
    params = BASELINE_GBM | {"seed": seed, "num_threads": threads}
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=BASELINE_ROUNDS,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(30, verbose=False)],
    )
    baseline_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(baseline_dir / BASELINE_GBM_FILE))
    gbm_layout = SeqLayout(**{**data.layout.__dict__, "kind": "lightgbm"})
    _write_common(baseline_dir, data, gbm_layout, np.asarray(booster.predict(x_val)), like)

    logistic = LogisticRegression(C=1.0, max_iter=1000)
    with threadpool_limits(threads):  # BLAS threads on a ~50-wide matrix: 7x the time here
        logistic.fit(expand_rows(x_train, data.layout), data.y_train)
    logreg_dir = baseline_dir / EXTRA_BASELINES_DIR / "logistic_regression"
    logreg_dir.mkdir(parents=True, exist_ok=True)
    np.savez(
        logreg_dir / WEIGHTS_FILE,
        coef=logistic.coef_[0],
        intercept=np.asarray(logistic.intercept_[0]),
    )
    score = logistic.predict_proba(expand_rows(x_val, data.layout))[:, 1]
    logreg_layout = SeqLayout(**{**data.layout.__dict__, "kind": "logistic_regression"})
    _write_common(logreg_dir, data, logreg_layout, score, like or baseline_dir)


def train(
    spec: ProjectSpec,
    train_frame: pd.DataFrame,
    validation_frame: pd.DataFrame,
    model_dir: Path,
    baseline_dir: Path,
    params: dict[str, dict[str, Any]],
    on_epoch: EpochCallback | None = None,
) -> list[float]:
    """The network into `model_dir`, the current-row baselines into `baseline_dir`."""
    p = params["lstm_seq"]
    seed = int(p.get("seed", spec.model.seed))
    data = prepare(spec, train_frame, validation_frame)
    net, history, _, score = _fit(data, p, seed, on_epoch)
    save_network(net, data, model_dir, score)
    train_baselines(data, baseline_dir, seed, like=model_dir, threads=training_threads(p))
    return history
