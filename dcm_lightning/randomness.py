"""Training randomness derived from (seed, step) instead of a global stream.

Lightning checkpoints do not store RNG states, so a run resumed from ``--ckpt_path`` would draw
different noise than an uninterrupted one. Drawing each step's noise, σ and prompt dropout from a
generator seeded by the run's seed and the global step makes a resumed run identical.
"""

from __future__ import annotations

import torch


def clip_seed(base_seed: int, index: int) -> int:
    """A per-clip seed that does not collide across nearby base seeds (splitmix-style mixing)."""
    z = (base_seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z ^= z >> 31
    return z & 0x7FFFFFFFFFFFFFFF


def step_generator(seed: int, step: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator owned by one optimizer step of one run."""
    return torch.Generator(device=device).manual_seed(clip_seed(seed, step))


def run_seed() -> int:
    """The seed set by ``seed_everything`` (the config's top-level ``seed_everything``)."""
    return torch.initial_seed() & 0x7FFFFFFF
