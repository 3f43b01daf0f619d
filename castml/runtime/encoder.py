"""The AutoEncoder's encoder as a numpy forward pass (float32, batched, no loops).

Mirrors `castml.models.autoencoder.Encoder` weight for weight; a test holds the
two within 1e-5. Weights come from the `encoder.npz` the trainer exports, keyed
by the torch state-dict names.

Why the forward pass is not written layer by layer: a single row costs about 1 us of
numpy dispatch per operation, so the op count, not the arithmetic, is the price.
Everything that does not depend on the input is folded at load time (in float64):

- each feature's token is affine in its scalar value, `t_f = x_f * E_f + e_f`, so the
  token layer norm's mean and variance are a per-feature quadratic in `x_f`, and the
  normalised tokens' q/k projections are `rstd_f * (x_f * P_f + Q_f) + R` (the
  1/sqrt(head_dim) of the scores is folded into q);
- the attention output is only ever read through `readout`, a linear map to one value
  per token, so `proj` and `readout` fold into one vector `u` and the values collapse
  to one number per head and token (`v . u`) before the attention weights apply; the
  softmax's normalisation is applied after that contraction, on `[N, H, F]`;
- each block's `gate` and `up` share one matmul.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LAYER_NORM_EPS = 1e-5
# Below this a softmax denominator has lost digits to float32 underflow (exp(-69)).
SMALLEST_SOFTMAX_SUM = 1e-30


class NumpyEncoder:
    """Scaled features `[N, F]` -> latent `[N, L]`."""

    def __init__(self, weights: dict[str, np.ndarray], heads: int, n_blocks: int) -> None:
        self.w = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
        self.heads = heads
        self.n_blocks = n_blocks
        self._fold()

    @classmethod
    def load(cls, path: Path) -> NumpyEncoder:
        with np.load(path) as data:
            weights = {k: data[k] for k in data.files if not k.startswith("meta.")}
            heads = int(data["meta.heads"])
            n_blocks = int(data["meta.n_blocks"])
        return cls(weights, heads, n_blocks)

    def _fold(self) -> None:
        w = {k: v.astype(np.float64) for k, v in self.w.items()}
        f32 = np.float32
        embed, embed_bias = w["attention.embed_weight"], w["attention.embed_bias"]  # [F, D]
        n_features, d = embed.shape
        heads, head_dim = self.heads, d // self.heads
        centred_w = embed - embed.mean(axis=1, keepdims=True)
        centred_b = embed_bias - embed_bias.mean(axis=1, keepdims=True)
        # Token variance as a quadratic in x_f: var_f = (a_f * x_f + b_f) * x_f + c_f.
        self._var_a = (centred_w**2).mean(axis=1)
        self._var_b = 2 * (centred_w * centred_b).mean(axis=1)
        self._var_c = (centred_b**2).mean(axis=1) + LAYER_NORM_EPS
        gamma, beta = w["attention.norm.weight"], w["attention.norm.bias"]
        qkv_w, qkv_b = w["attention.qkv.weight"], w["attention.qkv.bias"]  # [3D, D], [3D]
        p = (centred_w * gamma) @ qkv_w.T  # [F, 3D]
        q = (centred_b * gamma) @ qkv_w.T  # [F, 3D]
        r = beta @ qkv_w.T + qkv_b  # [3D]
        p[:, :d] /= np.sqrt(head_dim)
        q[:, :d] /= np.sqrt(head_dim)
        r[:d] /= np.sqrt(head_dim)

        def per_head(m: np.ndarray) -> np.ndarray:  # [F, D] -> [H, F, head_dim]
            return m.reshape(n_features, heads, head_dim).transpose(1, 0, 2)

        readout = w["attention.readout.weight"][0]  # [D]
        u = (w["attention.proj.weight"].T @ readout).reshape(heads, head_dim)
        # x + readout(tokens + proj(mixed)) = x * (1 + E.readout) + const + attention term.
        self._skip_w = f32(1.0 + embed @ readout)
        self._skip_b = f32(
            embed_bias @ readout
            + w["attention.proj.bias"] @ readout
            + w["attention.readout.bias"][0]
        )
        # Per token, the columns [q (D) | k (D) | (v . u, 1) per head (2H)] are one affine
        # map of (rstd * x, rstd): Z = rx * P + rstd * Q + R, and q, k^T and v.u are views.
        # [v . u, 1] lets one matmul with the unnormalised attention weights give the
        # softmax's numerator and denominator together.
        vu_p = (p[:, 2 * d :].reshape(n_features, heads, head_dim) * u).sum(-1)  # [F, H]
        vu_q = (q[:, 2 * d :].reshape(n_features, heads, head_dim) * u).sum(-1)
        vu_r = (r[2 * d :].reshape(heads, head_dim) * u).sum(-1)  # [H]
        zeros, ones = np.zeros((n_features, heads)), np.ones(heads)
        self._z_p = f32(
            np.hstack([p[:, : 2 * d], np.stack([vu_p, zeros], -1).reshape(n_features, -1)])
        )
        self._z_q = f32(
            np.hstack([q[:, : 2 * d], np.stack([vu_q, zeros], -1).reshape(n_features, -1)])
        )
        self._z_r = f32(np.concatenate([r[: 2 * d], np.stack([vu_r, ones], -1).reshape(-1)]))
        self._dims = (n_features, heads, head_dim)
        # Each block computes -gate (not gate): exp(-gate) then needs no negation, and
        # the block's output comes out negated, -silu(gate) * up, which the next layer's
        # weights (negated here, exactly) take back. The first block sees a true input.
        self._blocks = []
        sign = 1.0
        for i in range(self.n_blocks):
            gate, up = f"blocks.{i}.gate", f"blocks.{i}.up"
            width = w[f"{gate}.weight"].shape[0]
            weight = np.concatenate([-w[f"{gate}.weight"], w[f"{up}.weight"]]).T * sign
            self._blocks.append(
                (
                    np.ascontiguousarray(weight, dtype=f32),
                    f32(np.concatenate([-w[f"{gate}.bias"], w[f"{up}.bias"]])),
                    width,
                )
            )
            sign = -1.0
        self._out_w = np.ascontiguousarray(w["to_latent.weight"].T * sign, dtype=f32)
        self._out_b = f32(w["to_latent.bias"])

    def _attention(self, x: np.ndarray) -> np.ndarray:
        x64 = x.astype(np.float64)  # the variance quadratic cancels: keep its digits
        var = (self._var_a * x64 + self._var_b) * x64 + self._var_c  # eps included
        rstd = (1.0 / np.sqrt(var)).astype(np.float32)  # [N, F]
        n, (f, heads, head_dim) = len(x), self._dims
        z = (rstd * x)[:, :, None] * self._z_p
        z += rstd[:, :, None] * self._z_q
        z += self._z_r  # [N, F, 2D + 2H]
        d = heads * head_dim
        q = z[:, :, :d].reshape(n, f, heads, head_dim).transpose(0, 2, 1, 3)  # [N, H, F, hd]
        kt = z[:, :, d : 2 * d].reshape(n, f, heads, head_dim).transpose(0, 2, 3, 1)
        vu = z[:, :, 2 * d :].reshape(n, f, heads, 2).transpose(0, 2, 1, 3)  # [N, H, F, 2]
        scores = q @ kt  # [N, H, F, F]
        # Softmax is shift-invariant per row; one shift per sample (a contiguous reduction)
        # is far cheaper than numpy's reduction along a short last axis. Should a whole
        # row underflow against it, the exact per-row shift is used instead.
        shifted = scores - scores.reshape(n, -1).max(axis=1)[:, None, None, None]
        np.exp(shifted, out=shifted)
        weighted = shifted @ vu  # [N, H, F, 2]: sum_g e * (v . u), sum_g e
        if weighted[..., 1].min() < SMALLEST_SOFTMAX_SUM:
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            weighted = scores @ vu
        mixed: np.ndarray = (weighted[..., 0] / weighted[..., 1]).sum(axis=1)  # [N, F]
        mixed += x * self._skip_w
        mixed += self._skip_b
        return mixed

    def __call__(self, x: np.ndarray) -> np.ndarray:
        h = self._attention(np.asarray(x, dtype=np.float32))
        for weight, bias, width in self._blocks:
            z = h @ weight
            z += bias
            minus_gate, up = z[:, :width], z[:, width:]
            # -silu(gate) * up = (-gate) * up / (1 + exp(-gate))
            e = np.exp(minus_gate)
            e += 1.0
            h = minus_gate * up
            h /= e
        out = h @ self._out_w
        out += self._out_b
        return out
