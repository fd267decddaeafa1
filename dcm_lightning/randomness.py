"""Training randomness derived from (seed, step) instead of a global stream.

Lightning checkpoints do not store RNG states, so a run resumed from ``--ckpt_path`` would draw
different noise than an uninterrupted one. Drawing each step's noise, σ and prompt dropout from a
generator seeded by the run's seed and the global step makes a resumed run identical.
"""

from __future__ import annotations

import torch

from dcm_lightning.data.moving_shapes.render import clip_seed


def step_generator(seed: int, step: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator owned by one optimizer step of one run."""
    return torch.Generator(device=device).manual_seed(clip_seed(seed, step))


def run_seed() -> int:
    """The seed set by ``seed_everything`` (the config's top-level ``seed_everything``)."""
    return torch.initial_seed() & 0x7FFFFFFF
