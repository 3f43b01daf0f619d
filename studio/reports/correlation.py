"""The correlation matrix of a run's table: Pearson over the features most tied to clicks.

The `MAX_FEATURES` features with the largest |Pearson correlation| with the target (a
categorical as its frequency-ranked code), then the target itself; a constant column
correlates 0 with everything (Pearson is undefined there).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from studio.reports.table import Table

MAX_FEATURES = 12


def correlation(table: Table, target: str) -> dict[str, Any]:
    """`{features, matrix}`: the chosen features plus the target, and their correlations."""
    data = np.column_stack([table.x, table.y.astype(np.float64)])
    spread = data.std(axis=0)
    centred = (data - data.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    matrix = (centred.T @ centred) / len(data)
    matrix[spread == 0, :] = 0.0
    matrix[:, spread == 0] = 0.0
    np.fill_diagonal(matrix, 1.0)
    with_target = np.abs(matrix[:-1, -1])
    chosen = [int(i) for i in np.argsort(-with_target, kind="stable")[:MAX_FEATURES]]
    keep = [*chosen, len(table.features)]
    names = [table.features[i] for i in chosen] + [target]
    return {
        "features": names,
        "matrix": [[round(float(matrix[i, j]), 4) for j in keep] for i in keep],
        "method": "Pearson correlation; categoricals as frequency-ranked codes",
    }
