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


def step_generator(seed: int, step: int, rank: int = 0, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator owned by one optimizer step of one run on one data-parallel rank: ranks hold different
    samples, so each draws its own noise (the same on every rank would give a whole global batch one
    σ and one ε). Rank 0 draws what a one-process run draws, so single-process results do not depend
    on this."""
    step_seed = clip_seed(seed, step)
    return torch.Generator(device=device).manual_seed(step_seed if rank == 0 else clip_seed(step_seed, rank))


def run_seed() -> int:
    """The seed set by ``seed_everything`` (the config's top-level ``seed_everything``)."""
    return torch.initial_seed() & 0x7FFFFFFF
