"""Distillation prompts for real teachers: a text file with one caption per line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcm_lightning.errors import UserError
from dcm_lightning.randomness import clip_seed


@dataclass(frozen=True)
class TextCase:
    """One trajectory to cache: a caption and the seed of its initial noise."""

    prompt: str
    seed: int


def read_prompt_file(path: str | Path) -> list[str]:
    """The non-empty, stripped lines of ``path``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"prompt file {str(path)!r} does not exist; give a text file with one prompt per line.")
    prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not prompts:
        raise UserError(f"prompt file {path} holds no prompts.")
    return prompts


def prompt_file_suite(path: str | Path, num_cases: int, base_seed: int) -> list[TextCase]:
    """``num_cases`` trajectories over the file's prompts in file order (cycling when there are fewer
    prompts than cases), each with its own noise seed drawn from ``base_seed``."""
    if num_cases < 1:
        raise UserError(f"num_trajectories must be at least 1, got {num_cases}.")
    prompts = read_prompt_file(path)
    return [TextCase(prompts[i % len(prompts)], clip_seed(base_seed, i)) for i in range(num_cases)]
