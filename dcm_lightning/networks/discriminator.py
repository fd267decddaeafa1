"""The detail expert's discriminator: one light head per frozen-teacher feature block (docs/design.md §2).

Each head is the official one (Vchitect/DCM ``fastvideo/distill/discriminator*.py``) written over a
token axis instead of a hard-coded 49×80 grid, so any resolution or frame count works: per token a
1×1 "convolution" C → hidden, GroupNorm, LeakyReLU; a second hidden → hidden, GroupNorm, LeakyReLU
with the first's output added back; → 1 logit. GroupNorm statistics are taken per latent frame (the
official heads normalize each frame's h×w map), or, with ``norm: video``, over the whole clip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

Norm = Literal["frame", "video"]


class _ConvNormAct(nn.Module):
    """A 1×1 convolution over tokens, GroupNorm over (channel group × tokens of a frame), LeakyReLU."""

    def __init__(self, in_dim: int, out_dim: int, groups: int, slope: float) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)
        self.norm = nn.GroupNorm(groups, out_dim)
        self.act = nn.LeakyReLU(slope)

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens: m n d (m maps of n tokens each) → m n out_dim."""
        h = self.linear(tokens)
        return self.act(self.norm(h.transpose(1, 2)).transpose(1, 2))


class DiscriminatorHead(nn.Module):
    """tokens: b (f n) d → logits: b (f n), with GroupNorm per frame (``norm: frame``) or per clip."""

    def __init__(
        self, feature_dim: int, hidden_dim: int = 1024, groups: int = 32, slope: float = 0.01, norm: Norm = "frame"
    ) -> None:
        super().__init__()
        if norm not in ("frame", "video"):
            raise ValueError(f"norm must be 'frame' or 'video', got {norm!r}")
        self.norm = norm
        self.conv1 = _ConvNormAct(feature_dim, hidden_dim, groups, slope)
        self.conv2 = _ConvNormAct(hidden_dim, hidden_dim, groups, slope)
        self.conv_out = nn.Linear(hidden_dim, 1)

    def forward(self, tokens: Tensor, frames: int) -> Tensor:
        batch = tokens.shape[0]
        maps = frames if self.norm == "frame" else 1
        if tokens.shape[1] % maps:
            raise ValueError(f"{tokens.shape[1]} tokens do not split into {maps} frames")
        h = rearrange(tokens, "b (f n) d -> (b f) n d", f=maps)
        h = self.conv1(h)
        h = self.conv2(h) + h
        return rearrange(self.conv_out(h), "(b f) n 1 -> b (f n)", b=batch)


class FeatureDiscriminator(nn.Module):
    """One head per feature block; ``forward(features, frames)`` returns the per-block logits (b n each)
    of tokens laid out frame by frame (``frames`` latent frames after the temporal patching)."""

    def __init__(
        self,
        feature_dim: int,
        num_layers: int,
        hidden_dim: int = 1024,
        groups: int = 32,
        slope: float = 0.01,
        norm: Norm = "frame",
    ) -> None:
        super().__init__()
        self.heads = nn.ModuleList(
            DiscriminatorHead(feature_dim, hidden_dim, groups, slope, norm) for _ in range(num_layers)
        )

    checkpoint_heads = False  # recompute each head's activations in backward (set with activation checkpointing)

    def forward(self, features: Sequence[Tensor], frames: int) -> list[Tensor]:
        if len(features) != len(self.heads):
            raise ValueError(f"expected features of {len(self.heads)} layers, got {len(features)}")
        pairs = zip(self.heads, features, strict=True)
        if self.checkpoint_heads and torch.is_grad_enabled():
            # A head's hidden maps are (tokens × hidden_dim) several times over, per pass: at 720p far more
            # than the features it reads; kept, the three passes of a step would hold them all at once.
            return [checkpoint(head, f, frames, use_reentrant=False) for head, f in pairs]
        return [head(f, frames) for head, f in pairs]


def every_kth_block(first: int, stop: int, every: int) -> list[int]:
    """Block indices first, first + k, … below ``stop``: the official "every k-th block, counted from 0"
    (``i % k == 0``) over the blocks ``first..stop − 1`` a teacher offers the discriminator."""
    if every < 1:
        raise ValueError("the feature-block stride k must be at least 1")
    return list(range(first, stop, every))
