"""Network-output conventions, converted at the adapter boundary into (x̂0, ε̂) (docs/design.md §2).

A noise level is a float tensor shaped to broadcast against the sample, e.g. ``(b, 1, 1, 1, 1)``.
Flow matching uses σ ∈ [0, 1] directly; VP teachers use σ = t / (T − 1) for their discrete
DDPM timestep t, so that every grid and sampler speaks one noise coordinate.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn


class Parameterization(Protocol):
    """x_σ = a(σ)·x0 + b(σ)·ε, plus the map from network output to (x̂0, ε̂)."""

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor]: ...

    def model_timestep(self, sigma: Tensor) -> Tensor: ...

    def to_x0_eps(self, x: Tensor, sigma: Tensor, output: Tensor) -> tuple[Tensor, Tensor]: ...

    def training_target(self, x0: Tensor, eps: Tensor, sigma: Tensor) -> Tensor: ...


class FlowMatching:
    """Rectified flow (HunyuanVideo, Wan2.1, TinyVideoDiT): x_σ = (1−σ)·x0 + σ·ε, output v = ε − x0."""

    timestep_scale: float = 1000.0

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor]:
        return 1.0 - sigma, sigma

    def model_timestep(self, sigma: Tensor) -> Tensor:
        return self.timestep_scale * sigma

    def to_x0_eps(self, x: Tensor, sigma: Tensor, output: Tensor) -> tuple[Tensor, Tensor]:
        # x0 = x_σ − σ·v and ε = x_σ + (1 − σ)·v invert x_σ = (1−σ)x0 + σε with v = ε − x0.
        return x - sigma * output, x + (1.0 - sigma) * output

    def training_target(self, x0: Tensor, eps: Tensor, sigma: Tensor) -> Tensor:
        return eps - x0


class VPrediction(nn.Module):
    """Variance-preserving v-prediction (CogVideoX): x_t = α_t·x0 + s_t·ε, output v = α_t·ε − s_t·x0.

    α_t = √ᾱ_t and s_t = √(1 − ᾱ_t) come from the teacher's own DDPM schedule ``alphas_cumprod``
    (length T); the noise coordinate is σ = t / (T − 1), and t is rounded to the schedule's index.

    A module, so that the table follows its teacher's ``.to(device)``. It is held as the bit pattern
    of its float64 values (an int64 buffer): ``.to(torch.bfloat16)`` on the teacher casts floating
    buffers, and ᾱ in bf16 would be off by up to 0.4 %.
    """

    def __init__(self, alphas_cumprod: Tensor) -> None:
        super().__init__()
        table = torch.as_tensor(alphas_cumprod, dtype=torch.float64).contiguous()
        self.register_buffer("alphas_cumprod_bits", table.view(torch.int64), persistent=False)

    @property
    def alphas_cumprod(self) -> Tensor:
        return self.alphas_cumprod_bits.view(torch.float64)

    @property
    def num_train_timesteps(self) -> int:
        return self.alphas_cumprod.numel()

    def timestep_index(self, sigma: Tensor) -> Tensor:
        return torch.round(sigma.double() * (self.num_train_timesteps - 1)).long()

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor]:
        # σ = 0 is clean data (ᾱ = 1), where DDIM's last step lands ("set_alpha_to_one"); the model
        # itself is never asked at σ = 0, so timestep 0 keeps its own ᾱ_0 for model_timestep.
        # σ may live elsewhere than the teacher (a data loader noising on the CPU): index where σ is.
        alpha_bar = self.alphas_cumprod.to(sigma.device)[self.timestep_index(sigma)].to(sigma.dtype)
        alpha_bar = torch.where(sigma == 0, torch.ones_like(alpha_bar), alpha_bar)
        return alpha_bar.sqrt(), (1.0 - alpha_bar).sqrt()

    def model_timestep(self, sigma: Tensor) -> Tensor:
        return self.timestep_index(sigma)

    def to_x0_eps(self, x: Tensor, sigma: Tensor, output: Tensor) -> tuple[Tensor, Tensor]:
        alpha, s = self.coefficients(sigma)
        return alpha * x - s * output, s * x + alpha * output

    def training_target(self, x0: Tensor, eps: Tensor, sigma: Tensor) -> Tensor:
        alpha, s = self.coefficients(sigma)
        return alpha * eps - s * x0


def scaled_linear_alphas_cumprod(
    num_train_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012
) -> Tensor:
    """ᾱ_t of diffusers' "scaled_linear" DDPM schedule (the one CogVideoX's scheduler config names)."""
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0)
