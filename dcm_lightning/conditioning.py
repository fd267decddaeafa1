"""The condition every teacher and student takes: per-token prompt embeddings, their mask and, for
teachers that take one, a pooled prompt vector."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class TextCondition:
    """Per-token prompt embeddings and their mask (an all-False mask is the empty, null prompt), plus
    the pooled prompt vector of teachers that take one (HunyuanVideo's CLIP projection)."""

    embeds: Tensor  # b l d
    mask: Tensor  # b l, bool
    pooled: Tensor | None = None  # b p

    def to(self, device: torch.device | str) -> TextCondition:
        pooled = None if self.pooled is None else self.pooled.to(device)
        return TextCondition(self.embeds.to(device), self.mask.to(device), pooled)

    def __len__(self) -> int:
        return self.embeds.shape[0]

    def expand(self, batch: int) -> TextCondition:
        """A one-prompt condition (a negative prompt, say) repeated for ``batch`` samples, without a copy."""
        pooled = None if self.pooled is None else self.pooled.expand(batch, -1)
        return TextCondition(self.embeds.expand(batch, -1, -1), self.mask.expand(batch, -1), pooled)
