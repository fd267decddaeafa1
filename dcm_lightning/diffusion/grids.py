"""The teacher's shifted flow-matching grid with the paper's indexing (docs/design.md §2 "Grid")."""

from __future__ import annotations

import torch
from torch import Tensor

from dcm_lightning.errors import UserError

# κ when a config gives none: the official HunyuanVideo DCM boundary on a 50-step grid (σ_b = σ_37).
DEFAULT_BOUNDARY_INDEX = 37


def shifted_sigma(t: Tensor | float, shift: float) -> Tensor:
    """Time shift of SD3 / HunyuanVideo: σ(t) = shift·t / (1 + (shift − 1)·t)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    return shift * t / (1.0 + (shift - 1.0) * t)


def grid_sigma(index: int | Tensor, num_steps: int, shift: float) -> Tensor:
    """σ_i of the paper / official code: grid index i ∈ {0..N−1} denotes σ((i + 1) / N)."""
    index = torch.as_tensor(index, dtype=torch.float64)
    return shifted_sigma((index + 1.0) / num_steps, shift)


def sigma_at(indices: Tensor | int, sigmas: Tensor) -> Tensor:
    """σ of paper grid indices (any shape) on a teacher's level list ``sigmas`` (``teacher.sigmas()``:
    N + 1 levels, descending, ending at 0): index i is ``sigmas[N − 1 − i]``, and −1 the appended
    clean level σ = 0. One rule for flow-matching grids and a VP teacher's scheduler timesteps."""
    indices = torch.as_tensor(indices)
    num_steps = len(sigmas) - 1
    if indices.numel() and not bool(((indices >= -1) & (indices < num_steps)).all()):
        raise UserError(f"grid indices must lie in −1..{num_steps - 1} for a {num_steps}-step teacher.")
    return sigmas[num_steps - 1 - indices]


def teacher_sigmas(num_steps: int, shift: float) -> Tensor:
    """The N + 1 noise levels a teacher integrates over, descending: σ_{N−1} = 1, …, σ_0, 0.

    σ = 0 is appended so that sampling ends on clean data and the detail expert's range reaches it.
    """
    if num_steps < 1:
        raise UserError(f"the number of teacher steps must be at least 1, got {num_steps}.")
    indices = torch.arange(num_steps - 1, -1, -1)
    return torch.cat([grid_sigma(indices, num_steps, shift), torch.zeros(1, dtype=torch.float64)])


def validate_boundary_index(kappa: int, num_steps: int) -> int:
    """κ must name an inner grid point so that both experts own at least one step."""
    if not 0 < kappa < num_steps - 1:
        raise UserError(
            f"the expert boundary κ = {kappa} is outside the grid; it must satisfy 0 < κ < {num_steps - 1}."
        )
    return kappa
