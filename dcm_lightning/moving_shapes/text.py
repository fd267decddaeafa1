"""A frozen text encoder that needs no download: fixed random word vectors, like a frozen T5."""

from __future__ import annotations

import numpy as np
import torch

from dcm_lightning.conditioning import TextCondition
from dcm_lightning.moving_shapes.vocabulary import parse_prompt, reduce_to_vocabulary, vocabulary


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
