"""Training losses as small pure functions; each comment names the equation it implements."""

from __future__ import annotations

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
