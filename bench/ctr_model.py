"""The `lstm_seq` family (issue 15 §6): training throughput, served latency, quality.

- Training throughput, rows x epochs per second, through the pipeline's own train step
  (`castml.workflow.train_step` on the parts of the pipeline's own split step, which carry
  every row's window: encoding, the network, the current-row
  baselines, export) against the same `TabularSeqModel` trained by a bare PyTorch loop on
  the same (already expanded) tensors: the same epochs (those the pipeline ran: it may
  stop early), batch size, optimiser (Adam with the same weight decay; the pipeline runs
  torch's fused Adam, the same update in one kernel, the peer torch's default) and torch
  threads (`lstm_seq_family.training_threads`). Target >= 0.8x.
- Served predict p50 for one row with its window (v2 REST, one connection, keep-alive)
  through the real predictor (`python -m serving predictor`), against the numpy forward
  pass in process on the same encoded row. Target <= 5x.
- The quality table on the generator's time-ordered split: LSTM, LightGBM and logistic
  regression (ROC-AUC with its bootstrap CI, PR-AUC, log loss, Brier), from the
  evaluation the pipeline runs.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROWS = 60_000
TRAIN_TARGET = 0.8
SERVE_TARGET = 5.0
REQUESTS = 300


def _bare_loop_seconds(data: Any, p: dict[str, Any], seed: int) -> float:
    """The same network, optimiser, batches, epochs and threads; no windows, encoding,
    validation, baselines or export: the peer."""
    import torch

    from castml.models.lstm_seq_family import build_network, training_threads
    from castml.runtime.lstm_seq_model import expand

    current, steps = (torch.from_numpy(a) for a in expand(data.design_train, data.layout))
    y = torch.from_numpy(data.y_train)
    torch.manual_seed(seed)
    torch.set_num_threads(training_threads(p))
    net = build_network(data.layout, p)
    optimiser = torch.optim.Adam(
        net.parameters(), lr=float(p["learning_rate"]), weight_decay=float(p.get("weight_decay", 0))
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    batch = int(p["batch_size"])
    began = time.perf_counter()
    for _ in range(int(p["epochs"])):
        net.train()
        order = torch.randperm(len(y))
        for start in range(0, len(y), batch):
            idx = order[start : start + batch]
            loss = loss_fn(net(steps[idx], current[idx]), y[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return time.perf_counter() - began


def _served_p50_us(store: Path, inputs: list[dict[str, Any]], log_dir: Path) -> float:
    """p50 of one v2 REST infer on the real predictor, over a raw keep-alive socket
    (bench._raw_http: the server's time, not an HTTP client library's)."""
    from bench._raw_http import connect_when_up, exchange, request_bytes
    from castml.cli.local_processes import start_server

    env = {"CASTML_MODEL_STORE": str(store), "CASTML_MODEL_VERSION": "champion"}
    predictor = start_server("predictor", env, log_dir, project="ctr")
    try:
        request = request_bytes(
            "POST", "/v2/models/ctr/infer", json.dumps({"inputs": inputs}).encode()
        )
        sock = connect_when_up(int(predictor.url.rsplit(":", 1)[1]))
        with sock:
            for _ in range(30):
                exchange(sock, request)
            times = []
            for _ in range(REQUESTS):
                began = time.perf_counter()
                exchange(sock, request)
                times.append(time.perf_counter() - began)
        return statistics.median(times) * 1e6
    finally:
        predictor.stop()


def _in_process_us(call: Any, seconds: float = 0.5) -> float:
    call()
    n, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        call()
        n += 1
    return (time.perf_counter() - began) / n * 1e6


def run(rows: int = ROWS) -> dict[str, Any]:
    from castml.data.loaders import load_dataset
    from castml.data.validation import validated
    from castml.evaluation import evaluate
    from castml.models.lstm_seq_family import fit_network, prepare
    from castml.models.train import model_input
    from castml.runtime.loaded_model import load_model
    from castml.spec import load_spec
    from castml.workflow import _split, split_step, train_step
    from tests.support.lstm_seq_store import v2_inputs, window_rows

    body = load_spec("ctr").model_dump(mode="json", by_alias=True)
    body["source"]["rows"] = rows
    out: dict[str, Any] = {"rows": rows}
    with tempfile.TemporaryDirectory(prefix="bench-ctr-") as tmp:
        root = Path(tmp)
        import yaml

        spec_path = root / "ctr.yaml"
        spec_path.write_text(yaml.safe_dump(body, sort_keys=False))
        spec = load_spec(str(spec_path))
        frame = validated(load_dataset(spec), spec)
        # The pipeline's own split step: its parts carry every row's window, built over
        # the whole set before the cut (what train_step reads in a real run).
        frame.to_parquet(root / "data.parquet", index=False)
        paths = [root / f"{name}.parquet" for name in ("train", "validation", "test")]
        split_step(str(spec_path), root / "data.parquet", paths[0], paths[1], paths[2])
        train, validation, test = (pd.read_parquet(path) for path in paths)
        p = spec.model.resolved()["lstm_seq"]

        # Torch's first training steps pay a one-off start-up (about 2 s here), and the
        # pipeline's own first train step another ~0.4 s (its torch paths, fused Adam and
        # the validation passes; the baselines' LightGBM and scikit-learn loading; the
        # first Parquet reads): all paid once, on small slices, before either is timed,
        # so neither side is charged with a process's start-up as if it were throughput.
        warm = prepare(spec, train.iloc[:2000], validation)
        _bare_loop_seconds(warm, p | {"epochs": 1}, 0)
        fit_network(warm, p | {"epochs": 1}, 0)
        slices = [root / f"warm-{name}.parquet" for name in ("train", "validation")]
        train.iloc[:2000].to_parquet(slices[0], index=False)
        validation.iloc[:1000].to_parquet(slices[1], index=False)
        train_step(str(spec_path), slices[0], slices[1], root / "warm" / "model", root / "wb")
        began = time.perf_counter()
        history = train_step(
            str(spec_path),
            root / "train.parquet",
            root / "validation.parquet",
            root / "store" / "1" / "model",
            root / "baseline",
        )
        pipeline_s = time.perf_counter() - began
        epochs = len(history)  # patience may stop it early: the peer runs as many
        bare_s = _bare_loop_seconds(
            prepare(spec, train, validation), p | {"epochs": epochs}, spec.model.seed
        )
        pipeline_rate = len(train) * epochs / pipeline_s
        bare_rate = len(train) * epochs / bare_s
        out["training"] = {
            "train_rows": len(train),
            "epochs": epochs,
            "pipeline_rows_per_s": pipeline_rate,
            "bare_torch_rows_per_s": bare_rate,
            "ratio": pipeline_rate / bare_rate,
            "target": TRAIN_TARGET,
        }

        evaluation = evaluate(
            spec, root / "store" / "1" / "model", root / "baseline", test, None, plots=False
        )
        keys = ("roc_auc", "roc_auc_ci_low", "roc_auc_ci_high", "pr_auc", "log_loss", "brier")
        out["quality"] = {
            name: {k: metrics[k] for k in keys}
            for name, metrics in (
                ("lstm_seq", evaluation.candidate),
                ("lightgbm", evaluation.baseline),
                ("logistic_regression", evaluation.baselines["logistic_regression"]),
            )
        }
        out["quality"]["test_rows"] = len(test)
        out["gate"] = evaluation.gate.tag

        store = root / "store"
        (store / "aliases.json").write_text(json.dumps({"champion": "1"}))
        _, _, raw_test = _split(frame, spec)  # the same rows, as a client sends them
        flat, window = window_rows(raw_test.iloc[:2000])
        row = window.iloc[[len(window) - 1]]  # a late row: its stream has a full window
        model = load_model(store / "1" / "model")
        raw = model_input(row, flat)
        encoded = np.ascontiguousarray(
            model.encoding.encode(  # type: ignore[attr-defined]
                {n: raw[:, i] for i, n in enumerate(flat.feature_names)}, np.float32
            )
        )
        numpy_us = _in_process_us(lambda: model.predict(encoded))
        raw_us = _in_process_us(lambda: model.predict(raw))
        served_us = _served_p50_us(store, v2_inputs(flat, row), root / "logs")
        out["serving"] = {
            "served_p50_us": served_us,
            "numpy_forward_us": numpy_us,
            "numpy_encode_and_forward_us": raw_us,
            "ratio": served_us / numpy_us,
            "target": SERVE_TARGET,
        }
    return out


def main() -> None:
    results = run()
    t, s = results["training"], results["serving"]
    print(
        f"training: pipeline {t['pipeline_rows_per_s']:.0f} rows/s, bare torch "
        f"{t['bare_torch_rows_per_s']:.0f} rows/s: {t['ratio']:.2f}x (target >= {TRAIN_TARGET})"
    )
    print(
        f"serving 1 row + window: p50 {s['served_p50_us']:.0f} us served, numpy forward "
        f"{s['numpy_forward_us']:.0f} us: {s['ratio']:.1f}x (target <= {SERVE_TARGET})"
    )
    print(f"quality on {results['quality']['test_rows']} time-ordered holdout rows:")
    for name, metrics in results["quality"].items():
        if isinstance(metrics, dict):
            print(
                f"  {name:20s} ROC-AUC {metrics['roc_auc']:.3f} [{metrics['roc_auc_ci_low']:.3f}, "
                f"{metrics['roc_auc_ci_high']:.3f}]  PR-AUC {metrics['pr_auc']:.3f}  "
                f"log loss {metrics['log_loss']:.4f}  Brier {metrics['brier']:.4f}"
            )
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "ctr_model.json").write_text(json.dumps(results, indent=2))
