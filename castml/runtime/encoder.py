"""The AutoEncoder's encoder as a numpy forward pass (float32, batched, no loops).

Mirrors `castml.models.autoencoder.Encoder` weight for weight; a test holds the
two within 1e-5. Weights come from the `encoder.npz` the trainer exports, keyed
by the torch state-dict names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LAYER_NORM_EPS = 1e-5


def _linear(x: np.ndarray, w: dict[str, np.ndarray], name: str) -> np.ndarray:
    return np.asarray(x @ w[f"{name}.weight"].T + w[f"{name}.bias"])


def _silu(x: np.ndarray) -> np.ndarray:
    return np.asarray(x / (1.0 + np.exp(-x)))


def _layer_norm(x: np.ndarray, w: dict[str, np.ndarray], name: str) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return np.asarray(
        (x - mean) / np.sqrt(var + LAYER_NORM_EPS) * w[f"{name}.weight"] + w[f"{name}.bias"]
    )


class NumpyEncoder:
    """Scaled features `[N, F]` -> latent `[N, L]`."""

    def __init__(self, weights: dict[str, np.ndarray], heads: int, n_blocks: int) -> None:
        self.w = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
        self.heads = heads
        self.n_blocks = n_blocks

    @classmethod
    def load(cls, path: Path) -> NumpyEncoder:
        with np.load(path) as data:
            weights = {k: data[k] for k in data.files if not k.startswith("meta.")}
            heads = int(data["meta.heads"])
            n_blocks = int(data["meta.n_blocks"])
        return cls(weights, heads, n_blocks)

    def _attention(self, x: np.ndarray) -> np.ndarray:
        w = self.w
        tokens = x[:, :, None] * w["attention.embed_weight"] + w["attention.embed_bias"]  # [N,F,D]
        n, f, d = tokens.shape
        head_dim = d // self.heads
        qkv = _linear(_layer_norm(tokens, w, "attention.norm"), w, "attention.qkv")
        q, k, v = (
            part.reshape(n, f, self.heads, head_dim).transpose(0, 2, 1, 3)
            for part in np.split(qkv, 3, axis=-1)
        )
        scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(head_dim))  # [N,H,F,F]
        scores -= scores.max(axis=-1, keepdims=True)
        weights = np.exp(scores)
        weights /= weights.sum(axis=-1, keepdims=True)
        mixed = (weights @ v).transpose(0, 2, 1, 3).reshape(n, f, d)
        tokens = tokens + _linear(mixed, w, "attention.proj")
        return np.asarray(x + _linear(tokens, w, "attention.readout")[..., 0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        h = self._attention(np.asarray(x, dtype=np.float32))
        for i in range(self.n_blocks):
            name = f"blocks.{i}"
            h = _silu(_linear(h, self.w, f"{name}.gate")) * _linear(h, self.w, f"{name}.up")
        return _linear(h, self.w, "to_latent")
