"""The one deterministic solver step every sampler and consistency target uses."""

from torch import Tensor


def ddim_jump(x0: Tensor, eps: Tensor, a_target: Tensor | float, b_target: Tensor | float) -> Tensor:
    """DDIM in (x̂0, ε̂) form: x_s = a_s·x̂0 + b_s·ε̂ (docs/design.md §2 "Noise convention").

    For flow matching (a_s, b_s) = (1 − s, s) and this is exactly the Euler step x_σ + (s − σ)·v.
    Coefficients broadcast: pass floats or tensors shaped like ``x0`` or ``(b, 1, 1, 1, 1)``.
    """
    return a_target * x0 + b_target * eps


def renoise(
    x: Tensor, coefficients_from: tuple[Tensor, Tensor], coefficients_to: tuple[Tensor, Tensor], eps: Tensor
) -> Tensor:
    """Move a sample at level σ_e to the higher level σ_adv with fresh noise, variance-correct
    (docs/design.md §2 "GAN + feature matching"): x_adv = a·x_e + √(b_adv² − a²·b_e²)·ε, a = a_adv / a_e.

    For flow matching (a, b) = (1 − σ, σ), so a = (1 − σ_adv)/(1 − σ_e); a clean x_e (σ_e = 0) gives
    exactly the forward process at σ_adv. Coefficient pairs broadcast like ``ddim_jump``'s.
    """
    (a_from, b_from), (a_to, b_to) = coefficients_from, coefficients_to
    scale = a_to / a_from
    variance = b_to * b_to - scale * scale * b_from * b_from
    if (variance < -1e-6).any():
        raise ValueError("renoise goes to a lower noise level; σ_adv must not be below σ_e")
    return scale * x + variance.clamp_min(0.0).sqrt() * eps
