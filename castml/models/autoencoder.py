"""The AutoEncoder: self-attention over feature tokens, SwiGLU blocks, a latent code.

Encoder: F features -> per-feature tokens -> 4-head self-attention (residual)
-> SwiGLU 30->64->32->16 -> linear -> latent 12. The decoder mirrors it with
SiLU layers, and an auxiliary head on the latent code predicts the target, so
the latent features carry what matters for defects, not only what reconstructs.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn


class FeatureAttention(nn.Module):
    """Each feature becomes a token (value x learned embedding); tokens attend to each other."""

    def __init__(self, n_features: int, token_dim: int, heads: int) -> None:
        super().__init__()
        if token_dim % heads:
            raise ValueError("token_dim must be divisible by heads")
        self.heads = heads
        self.embed_weight = nn.Parameter(torch.randn(n_features, token_dim) * 0.2)
        self.embed_bias = nn.Parameter(torch.zeros(n_features, token_dim))
        self.norm = nn.LayerNorm(token_dim)
        self.qkv = nn.Linear(token_dim, 3 * token_dim)
        self.proj = nn.Linear(token_dim, token_dim)
        self.readout = nn.Linear(token_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.unsqueeze(-1) * self.embed_weight + self.embed_bias  # [N,F,D]
        n, f, d = tokens.shape
        head_dim = d // self.heads
        q, k, v = (
            part.reshape(n, f, self.heads, head_dim).transpose(1, 2)
            for part in self.qkv(self.norm(tokens)).chunk(3, dim=-1)
        )
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head_dim), dim=-1)
        mixed = (weights @ v).transpose(1, 2).reshape(n, f, d)
        tokens = tokens + self.proj(mixed)
        out: torch.Tensor = x + self.readout(tokens).squeeze(-1)
        return out


class SwiGLU(nn.Module):
    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.gate = nn.Linear(d_in, d_out)
        self.up = nn.Linear(d_in, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = nn.functional.silu(self.gate(x)) * self.up(x)
        return out


class Encoder(nn.Module):
    def __init__(
        self, n_features: int, hidden: list[int], latent: int, token_dim: int, heads: int
    ) -> None:
        super().__init__()
        self.attention = FeatureAttention(n_features, token_dim, heads)
        widths = [n_features, *hidden]
        self.blocks = nn.ModuleList(SwiGLU(a, b) for a, b in itertools.pairwise(widths))
        self.to_latent = nn.Linear(widths[-1], latent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.attention(x)
        for block in self.blocks:
            h = block(h)
        latent: torch.Tensor = self.to_latent(h)
        return latent

    def export(self, path: Path) -> None:
        """Write the weights for `castml.runtime.encoder.NumpyEncoder`."""
        arrays = {
            k: v.detach().cpu().numpy().astype(np.float32) for k, v in self.state_dict().items()
        }
        arrays["meta.heads"] = np.array(self.attention.heads)
        arrays["meta.n_blocks"] = np.array(len(self.blocks))
        np.savez(path, **arrays)


class AutoEncoder(nn.Module):
    def __init__(
        self, n_features: int, hidden: list[int], latent: int, token_dim: int, heads: int
    ) -> None:
        super().__init__()
        self.encoder = Encoder(n_features, hidden, latent, token_dim, heads)
        widths = [latent, *reversed(hidden)]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(widths):
            layers += [nn.Linear(a, b), nn.SiLU()]
        layers.append(nn.Linear(widths[-1], n_features))
        self.decoder = nn.Sequential(*layers)
        self.aux_head = nn.Linear(latent, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return z, self.decoder(z), self.aux_head(z).squeeze(-1)


def focal_loss(
    logits: torch.Tensor, target: torch.Tensor, gamma: float, alpha: float
) -> torch.Tensor:
    """Binary focal loss (Lin et al. 2017): down-weights the easy, plentiful 'ok' shots."""
    bce = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = torch.exp(-bce)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return (alpha_t * (1 - p_t) ** gamma * bce).mean()
