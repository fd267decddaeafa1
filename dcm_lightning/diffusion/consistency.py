"""The phased consistency target of docs/design.md §2, as pure functions of denoisers.

A denoiser maps (x: b c f h w, σ: (b,)) to (x̂0, ε̂); the student, its target network and the
teacher are all wrapped into this one signature, so the math never sees a module.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from dcm_lightning.diffusion.parameterization import Parameterization
from dcm_lightning.diffusion.solvers import ddim_jump

Denoiser = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def _level(sigma: Tensor) -> Tensor:
    return sigma.reshape(-1, 1, 1, 1, 1)


def jump(denoiser: Denoiser, parameterization: Parameterization, x: Tensor, sigma: Tensor, target: Tensor) -> Tensor:
    """x_s = a_s·x̂0 + b_s·ε̂ with (x̂0, ε̂) = denoiser(x, σ): one deterministic DDIM jump σ → s."""
    x0, eps = denoiser(x, sigma)
    a, b = parameterization.coefficients(_level(target).to(x.dtype))
    return ddim_jump(x0, eps, a, b)


@torch.no_grad()
def consistency_target(
    target_denoiser: Denoiser,
    parameterization: Parameterization,
    x_prev: Tensor,
    sigma_prev: Tensor,
    sigma_end: Tensor,
) -> Tensor:
    """y = jump(x_{n−1}, σ_{n−1} → σ_e) with the stop-gradient target network; where the teacher
    step already landed on the phase end (σ_{n−1} = σ_e), y = x_{n−1} (the boundary condition)."""
    jumped = jump(target_denoiser, parameterization, x_prev, sigma_prev, sigma_end)
    at_end = _level(sigma_prev == sigma_end)
    return torch.where(at_end, x_prev, jumped)
