"""A frozen text encoder that needs no download: fixed random word vectors, like a frozen T5."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from dcm_lightning.data.moving_shapes.vocabulary import parse_prompt, reduce_to_vocabulary, vocabulary


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


class MovingShapesTextEncoder:
    """Maps each vocabulary word to a fixed vector drawn from a seeded NumPy generator (stable across
    torch versions), so the teacher's weights stay valid wherever the package is installed."""

    def __init__(self, dim: int = 64, max_tokens: int = 8, seed: int = 0) -> None:
        self.dim = dim
        self.seed = seed
        self.max_tokens = max_tokens
        self.words = vocabulary()
        rng = np.random.default_rng(seed)
        table = rng.standard_normal((len(self.words), dim)) / np.sqrt(dim)
        self.table = torch.from_numpy(table.astype(np.float32))
        self.word_ids = {word: i for i, word in enumerate(self.words)}

    def encode(self, prompts: list[str], open_vocabulary: bool = False) -> TextCondition:
        """Embed prompts; ``""`` is the null prompt used for classifier-free guidance. A prompt must name
        all four attributes in the vocabulary's words, unless ``open_vocabulary``: then any text is
        reduced to the vocabulary words it contains (``reduce_to_vocabulary``)."""
        embeds = torch.zeros(len(prompts), self.max_tokens, self.dim)
        mask = torch.zeros(len(prompts), self.max_tokens, dtype=torch.bool)
        for row, prompt in enumerate(prompts):
            if open_vocabulary:
                prompt = reduce_to_vocabulary(prompt)
            if not prompt:
                continue
            if not open_vocabulary:
                parse_prompt(prompt)  # refuse unknown words before any compute
            ids = [self.word_ids[w] for w in prompt.lower().replace(",", " ").split()][: self.max_tokens]
            embeds[row, : len(ids)] = self.table[ids]
            mask[row, : len(ids)] = True
        return TextCondition(embeds, mask)
