"""`TabularSeqModel`: an LSTM over a stream's last k rows + an MLP head over the current row.

Training only (torch); serving runs the same network in numpy
(`castml.runtime.lstm_seq_model.LstmSeqModel`), from the weights `export` writes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn


class TabularSeqModel(nn.Module):
    def __init__(
        self,
        step_dim: int,
        current_dim: int,
        lstm_hidden: int,
        mlp_hidden: list[int],
        dropout: float,
    ) -> None:
        super().__init__()
        self.lstm = nn.LSTM(step_dim, lstm_hidden, batch_first=True)
        layers: list[nn.Module] = []
        width = lstm_hidden + current_dim
        for size in mlp_hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, 1))
        self.head = nn.Sequential(*layers)

    def forward(self, steps: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        """Logits `[N]` for steps `[N, k, step_dim]` (oldest first) and current `[N, D]`."""
        _, (hidden, _) = self.lstm(steps)
        out: torch.Tensor = self.head(torch.cat([hidden[-1], current], dim=1))
        return out.squeeze(1)

    def export(self) -> dict[str, np.ndarray]:
        """The weights, named as the numpy forward pass reads them."""
        linears = [m for m in self.head if isinstance(m, nn.Linear)]
        weights: dict[str, Any] = {
            "lstm_w_ih": self.lstm.weight_ih_l0,
            "lstm_w_hh": self.lstm.weight_hh_l0,
            "lstm_b_ih": self.lstm.bias_ih_l0,
            "lstm_b_hh": self.lstm.bias_hh_l0,
        }
        for index, layer in enumerate(linears):
            weights[f"head_w{index}"] = layer.weight
            weights[f"head_b{index}"] = layer.bias
        out = {name: value.detach().cpu().numpy().copy() for name, value in weights.items()}
        out["head_layers"] = np.asarray(len(linears))
        return out
