"""Whether a classifier has skill at all: a bootstrap confidence interval of its ROC-AUC.

An AUC of 0.5 is a coin flip. On rare clicks (0.5 % of 10,000 impressions: 50 positives)
an AUC of 0.55 is well within what chance gives, so the point estimate alone cannot say
"no skill"; the interval can. The bootstrap is stratified (positives and negatives are
resampled separately, so every resample has both classes and the same base rate) and
vectorised: the scores are ranked once, and each resample only reweights the rows
(bootstrap counts), so 1,000 resamples of 12,000 rows take about a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NO_SKILL_AUC = 0.5
LEVEL = 0.95
RESAMPLES = 1000


@dataclass(frozen=True)
class AucInterval:
    auc: float
    low: float
    high: float
    level: float
    resamples: int

    @property
    def no_skill(self) -> bool:
        """The interval holds 0.5 (or is undefined): no evidence the model ranks better
        than chance."""
        return not (self.low > NO_SKILL_AUC or self.high < NO_SKILL_AUC)

    def describe(self) -> str:
        return (
            f"ROC-AUC {self.auc:.3f}, {self.level:.0%} bootstrap CI "
            f"[{self.low:.3f}, {self.high:.3f}]"
        )


def _weighted_auc(starts: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC per row of `weights` `[B, N]`: rows sorted by score, tie groups beginning at
    `starts` (ties count one half)."""
    pos_w = np.where(positive, weights, 0.0)
    neg_g = np.add.reduceat(weights - pos_w, starts, axis=1)
    pos_g = np.add.reduceat(pos_w, starts, axis=1)
    below = np.cumsum(neg_g, axis=1) - neg_g  # negatives scored strictly lower
    wins = (pos_g * (below + 0.5 * neg_g)).sum(axis=1)
    total = pos_g.sum(axis=1) * neg_g.sum(axis=1)
    return np.asarray(wins / np.where(total > 0, total, np.nan))


def _counts(rng: np.random.Generator, n: int, b: int) -> np.ndarray:
    """`[b, n]`: how often each of n rows is drawn in each of b resamples of size n."""
    draws = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
    return np.bincount(draws.reshape(-1), minlength=b * n).reshape(b, n)


def auc_interval(
    y: np.ndarray,
    score: np.ndarray,
    *,
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> AucInterval:
    """ROC-AUC of `score` for 0/1 labels `y`, with a stratified percentile bootstrap CI."""
    y = np.asarray(y).astype(bool).reshape(-1)
    score = np.asarray(score, dtype=np.float64).reshape(-1)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        nan = float("nan")
        return AucInterval(nan, nan, nan, level, 0)
    order = np.argsort(score, kind="stable")
    sorted_score, positive = score[order], y[order]
    starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])
    point = float(_weighted_auc(starts, positive, np.ones((1, len(y))))[0])
    rng = np.random.default_rng(seed)
    pos_index, neg_index = np.flatnonzero(positive), np.flatnonzero(~positive)
    aucs: list[np.ndarray] = []
    chunk = max(1, min(resamples, 2_000_000 // len(y)))
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        weights = np.zeros((b, len(y)))
        weights[:, pos_index] = _counts(rng, n_pos, b)
        weights[:, neg_index] = _counts(rng, n_neg, b)
        aucs.append(_weighted_auc(starts, positive, weights))
    values = np.concatenate(aucs)
    tail = (1.0 - level) / 2.0
    low, high = np.nanquantile(values, [tail, 1.0 - tail])
    return AucInterval(point, float(low), float(high), level, resamples)
