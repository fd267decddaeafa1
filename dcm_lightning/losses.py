"""Training losses as small pure functions; each comment names the equation it implements."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dcm_lightning.diffusion import Parameterization


def denoising_loss(
    network: nn.Module,
    parameterization: Parameterization,
    x0: Tensor,
    eps: Tensor,
    sigma: Tensor,
    text_embeds: Tensor,
    text_mask: Tensor,
) -> Tensor:
    """Teacher pretraining: ‖net(x_σ, σ) − target(x0, ε)‖² (rectified flow: target v = ε − x0).

    x0, eps: b c f h w; sigma: (b,).
    """
    level = sigma.view(-1, 1, 1, 1, 1)
    a, b = parameterization.coefficients(level)
    x_sigma = a * x0 + b * eps
    output = network(x_sigma, parameterization.model_timestep(sigma), text_embeds, text_mask)
    return (output - parameterization.training_target(x0, eps, level)).square().mean()


def pseudo_huber(prediction: Tensor, target: Tensor, c: float = 1e-3) -> Tensor:
    """Consistency loss of iCT / DCM: mean(√((x̂ − y)² + c²) − c), elementwise."""
    return (torch.sqrt((prediction - target).square() + c * c) - c).mean()


def temporal_coherence(prediction: Tensor, target: Tensor, lag: int) -> Tensor:
    """DCM's temporal coherence loss on the frame axis of b c f h w latents:
    L_TC = mean(((x̂[l:] − x̂[:−l]) − (y[l:] − y[:−l]))²)."""
    frames = prediction.shape[2]
    if not 0 < lag < frames:
        raise ValueError(f"lag {lag} needs 0 < lag < frames ({frames})")
    predicted_motion = prediction[:, :, lag:] - prediction[:, :, :-lag]
    target_motion = target[:, :, lag:] - target[:, :, :-lag]
    return (predicted_motion - target_motion).square().mean()
