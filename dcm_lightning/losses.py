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


# ---- the detail expert's adversarial and feature-matching terms (DESIGN.md §2) ----------------------


def hinge_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """L_D = mean(relu(1 − D(real))) + mean(relu(1 + D(fake)))."""
    return torch.relu(1.0 - real_logits).mean() + torch.relu(1.0 + fake_logits).mean()


def hinge_generator_loss(fake_logits: Tensor) -> Tensor:
    """The generator's hinge term: −mean(D(fake))."""
    return -fake_logits.mean()


def non_saturating_generator_loss(fake_logits: Tensor) -> Tensor:
    """The non-saturating GAN term: mean(softplus(−D(fake))) = −mean(log σ(D(fake)))."""
    return torch.nn.functional.softplus(-fake_logits).mean()


def feature_matching(fake_features: list[Tensor], real_features: list[Tensor]) -> Tensor:
    """λ_fm's term: mean over layers of ‖Ω_k(fake) − Ω_k(real)‖² (mean over elements)."""
    if len(fake_features) != len(real_features) or not fake_features:
        raise ValueError("feature matching needs the same non-empty list of layers for fake and real")
    terms = [(f - r).square().mean() for f, r in zip(fake_features, real_features, strict=True)]
    return torch.stack(terms).mean()
