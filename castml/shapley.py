"""Shapley values of any vectorised model over raw features, by antithetic permutation chains.

Each chain starts at one background row and switches the features to the explained
row's values one at a time, in a random order. A feature's attribution is the mean of
its step's change in the model output. The steps of one chain telescope to
f(x) - f(background row), so the attributions sum to f(x) - E_background[f] up to
float rounding, whatever the number of permutations (local accuracy holds exactly;
more permutations only lower the variance of each single attribution). Every second
chain walks the reverse order of the one before (antithetic pairs), which cancels
much of the ordering noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

ModelFn = Callable[[np.ndarray], np.ndarray]  # [N, F] float32 -> [N] float64
CHUNK_ROWS = 4096  # bounds the encoder's [N, heads, F, F] attention memory


@dataclass(frozen=True)
class Attribution:
    phi: np.ndarray  # [F] float64
    base_value: float  # E_background[f]
    prediction: float  # f(x)

    @property
    def local_accuracy_error(self) -> float:
        return float(abs(self.phi.sum() - (self.prediction - self.base_value)))


def _orders(n_background: int, permutations: int, n_features: int, seed: int) -> np.ndarray:
    """`[chains, F]` feature orders: `permutations` per background row, in antithetic pairs."""
    rng = np.random.default_rng(seed)
    half = (permutations + 1) // 2
    forward = np.argsort(rng.random((n_background, half, n_features)), axis=-1)
    orders = np.concatenate([forward, forward[..., ::-1]], axis=1)[:, :permutations]
    return orders.reshape(-1, n_features)


def _evaluate(f: ModelFn, rows: np.ndarray) -> np.ndarray:
    if len(rows) <= CHUNK_ROWS:
        return np.asarray(f(rows), dtype=np.float64)
    return np.concatenate(
        [
            np.asarray(f(rows[i : i + CHUNK_ROWS]), dtype=np.float64)
            for i in range(0, len(rows), CHUNK_ROWS)
        ]
    )


def shapley(
    f: ModelFn, x: np.ndarray, background: np.ndarray, permutations: int = 4, seed: int = 0
) -> Attribution:
    """Attributions of one row `x` `[F]` against `background` `[B, F]`."""
    background = np.asarray(background, dtype=np.float32)
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    n_bg, n_features = background.shape
    orders = _orders(n_bg, permutations, n_features, seed)  # [C, F]
    chains = len(orders)
    position = np.argsort(orders, axis=1)  # position[c, j]: the step at which feature j switches
    # Step k of chain c holds x where position < k, the chain's background row elsewhere.
    steps = np.arange(n_features + 1)[None, :, None]
    use_x = position[:, None, :] < steps  # [C, F+1, F]
    start = np.repeat(background, permutations, axis=0)  # [C, F]
    # The first and last steps are the same for many chains: evaluate them once.
    inner = np.where(use_x[:, 1:-1, :], x, start[:, None, :]).reshape(-1, n_features)
    values = np.empty((chains, n_features + 1))
    f_background = _evaluate(f, background)
    values[:, 0] = np.repeat(f_background, permutations)
    values[:, -1] = _evaluate(f, x[None, :])[0]
    values[:, 1:-1] = _evaluate(f, inner).reshape(chains, n_features - 1)
    step_change = np.diff(values, axis=1)  # [C, F]: change at step k, caused by orders[c, k]
    phi = np.take_along_axis(step_change, position, axis=1).mean(axis=0)
    return Attribution(
        phi=phi, base_value=float(values[:, 0].mean()), prediction=float(values[0, -1])
    )
