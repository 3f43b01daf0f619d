"""LightGBM's trees evaluated in numpy: the alternative `bench/model.py` measures.

Kept out of the runtime because it lost at every batch size to LightGBM's own C calls
made directly (`castml.runtime.ae_gbm.DirectGbm`: about 4x faster for one row, more
from two rows on); the numbers are in `python -m bench model`.

`Booster.predict` costs tens of microseconds of Python and ctypes per call before a tree
is walked; a single row needs far less. Here every tree is flattened once, at load, and
a batch is scored with a fixed handful of array operations, whatever the depth:

- every split of every tree is decided at once: `d = x[:, feature] <= threshold`
  (LightGBM's rule for a numerical split; the float32 input widens to float64 exactly as
  LightGBM widens it);
- a leaf is reached when all the decisions on its path agree: with `S[i, l] = +1` when
  leaf `l` lies left of split `i` and `-1` when it lies right, `d @ S` equals the number of
  left turns on the path for that leaf alone;
- leaf values are summed tree by tree in float64 in tree order, then the objective's
  link (identity, or the sigmoid of `binary sigmoid:k`) applies.

Only what this evaluator reproduces exactly is accepted (`compile_trees` returns None
otherwise and the caller keeps LightGBM): numerical splits whose missing-value handling
cannot fire on finite inputs, one output per row, a plain sum of trees. Inputs are finite
(the servers refuse NaN and inf before the model is called).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# LightGBM's decision_type bits: 1 = categorical, 2 = default left, 12 = missing type.
_CATEGORICAL = 1
_MISSING_MASK = 12
_MISSING_ZERO = 4  # zero counts as missing: a 0.0 input would take the default side
_IDENTITY_OBJECTIVES = ("regression", "regression_l1", "huber", "fair", "quantile", "mape")


@dataclass(frozen=True)
class TreeArrays:
    feature: np.ndarray  # [T * M] int64, split feature of each (padded) split
    threshold: np.ndarray  # [T * M] float64; padding: +inf (always left, never read)
    paths: np.ndarray  # [T, M, L] float32, +1 left / -1 right ancestor of a leaf
    left_turns: np.ndarray  # [T, 1, L] float32; padding leaves: -1 (never matched)
    values: np.ndarray  # [T, 1, L] float64
    n_trees: int
    n_splits: int
    sigmoid: float | None  # None: identity link

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Sum of leaf values per row, `[N]` float64."""
        n = x.shape[0]
        decided = (x[:, self.feature] <= self.threshold).astype(np.float32)
        decided = decided.reshape(n, self.n_trees, self.n_splits).transpose(1, 0, 2)
        reached = (decided @ self.paths) == self.left_turns  # [T, N, L]
        per_tree = np.where(reached, self.values, 0.0).sum(axis=2)  # [T, N], one leaf each
        return np.asarray(per_tree.sum(axis=0))  # outer-axis sum: in tree order

    def __call__(self, x: np.ndarray) -> np.ndarray:
        raw = self.raw(x)
        if self.sigmoid is None:
            return raw
        return np.asarray(1.0 / (1.0 + np.exp(-self.sigmoid * raw)))


def _parse(model_text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    header: dict[str, str] = {}
    trees: list[dict[str, str]] = []
    current = header
    for line in model_text.splitlines():
        if line.startswith("Tree="):
            current = {}
            trees.append(current)
        elif line.startswith("end of trees"):
            break
        elif "=" in line:
            key, _, value = line.partition("=")
            current[key] = value
    return header, trees


def _link(objective: str) -> tuple[bool, float | None]:
    """(supported, sigmoid factor or None for identity)."""
    name, *args = objective.split()
    if name == "binary":
        options = dict(a.split(":", 1) for a in args if ":" in a)
        return True, float(options.get("sigmoid", "1"))
    return name in _IDENTITY_OBJECTIVES, None


def compile_trees(model_text: str) -> TreeArrays | None:
    """The flattened trees of a LightGBM text model, or None when numpy cannot match it."""
    header, trees = _parse(model_text)
    supported, sigmoid = _link(header.get("objective", ""))
    if (
        not supported
        or not trees
        or header.get("num_class", "1") != "1"
        or header.get("num_tree_per_iteration", "1") != "1"
        or "average_output" in header
        or any(t.get("is_linear", "0") != "0" for t in trees)
    ):
        return None
    parsed: list[dict[str, Any]] = []
    for tree in trees:
        leaves = int(tree["num_leaves"])
        values = [float(v) for v in tree["leaf_value"].split()]
        if leaves == 1:
            parsed.append(
                {"feature": [], "threshold": [], "left": [], "right": [], "values": values}
            )
            continue
        kinds = [int(v) for v in tree["decision_type"].split()]
        if any(k & _CATEGORICAL or (k & _MISSING_MASK) == _MISSING_ZERO for k in kinds):
            return None
        parsed.append(
            {
                "feature": [int(v) for v in tree["split_feature"].split()],
                "threshold": [float(v) for v in tree["threshold"].split()],
                "left": [int(v) for v in tree["left_child"].split()],
                "right": [int(v) for v in tree["right_child"].split()],
                "values": values,
            }
        )
    n_trees = len(parsed)
    n_splits = max(1, max(len(t["feature"]) for t in parsed))
    n_leaves = max(len(t["values"]) for t in parsed)
    feature = np.zeros((n_trees, n_splits), np.int64)
    threshold = np.full((n_trees, n_splits), math.inf)
    paths = np.zeros((n_trees, n_splits, n_leaves), np.float32)
    left_turns = np.full((n_trees, 1, n_leaves), -1.0, np.float32)
    values = np.zeros((n_trees, 1, n_leaves), np.float64)
    for t, tree in enumerate(parsed):
        k = len(tree["feature"])
        feature[t, :k] = tree["feature"]
        threshold[t, :k] = tree["threshold"]
        values[t, 0, : len(tree["values"])] = tree["values"]
        if k == 0:
            left_turns[t, 0, 0] = 0.0  # a single leaf: reached by every row
            continue
        # Walk from the root; a child < 0 is leaf ~child.
        stack: list[tuple[int, list[tuple[int, float]]]] = [(0, [])]
        while stack:
            node, path = stack.pop()
            for child, turn in ((tree["left"][node], 1.0), (tree["right"][node], -1.0)):
                route = [*path, (node, turn)]
                if child >= 0:
                    stack.append((child, route))
                    continue
                leaf = ~child
                for split, sign in route:
                    paths[t, split, leaf] = sign
                left_turns[t, 0, leaf] = sum(1.0 for _, sign in route if sign > 0)
    return TreeArrays(
        feature.reshape(-1),
        threshold.reshape(-1),
        paths,
        left_turns,
        values,
        n_trees,
        n_splits,
        sigmoid,
    )
