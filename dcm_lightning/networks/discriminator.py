"""The detail expert's discriminator: one light head per frozen-teacher feature layer (docs/design.md §2).

Each head maps a layer's tokens (b n d) to one logit per token, as the official heads do with 1×1
convolutions (C → hidden, GroupNorm, LeakyReLU, residual, → 1), but over a token axis of any length,
so any resolution or frame count works (the official heads hard-code a 49×80 grid).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class DiscriminatorHead(nn.Module):
    """tokens: b n d → logits: b n."""

    def __init__(self, feature_dim: int, hidden_dim: int = 1024, groups: int = 32) -> None:
        super().__init__()
        self.proj_in = nn.Linear(feature_dim, hidden_dim)
        self.norm = nn.GroupNorm(groups, hidden_dim)
        self.act = nn.LeakyReLU(0.2)
        self.residual = nn.Linear(hidden_dim, hidden_dim)
        self.proj_out = nn.Linear(hidden_dim, 1)

    def forward(self, tokens: Tensor) -> Tensor:
        h = self.proj_in(tokens)  # b n h
        normed = self.norm(h.transpose(1, 2)).transpose(1, 2)  # GroupNorm over channels: b h n
        h = h + self.residual(self.act(normed))
        return self.proj_out(self.act(h)).squeeze(-1)


class FeatureDiscriminator(nn.Module):
    """One head per feature layer; returns the per-layer logits (b n each)."""

    def __init__(self, feature_dim: int, num_layers: int, hidden_dim: int = 1024, groups: int = 32) -> None:
        super().__init__()
        self.heads = nn.ModuleList(DiscriminatorHead(feature_dim, hidden_dim, groups) for _ in range(num_layers))

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        if len(features) != len(self.heads):
            raise ValueError(f"expected features of {len(self.heads)} layers, got {len(features)}")
        return [head(f) for head, f in zip(self.heads, features, strict=True)]


def feature_layers(depth: int, every: int) -> list[int]:
    """Ω's layers: every k-th transformer block of the teacher, counted from the first (official k = 2)."""
    if every < 1:
        raise ValueError("the feature-layer stride k must be at least 1")
    return list(range(every - 1, depth, every))
