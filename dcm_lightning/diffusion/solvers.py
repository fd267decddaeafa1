"""The one deterministic solver step every sampler and consistency target uses."""

from torch import Tensor


def ddim_jump(x0: Tensor, eps: Tensor, a_target: Tensor | float, b_target: Tensor | float) -> Tensor:
    """DDIM in (x̂0, ε̂) form: x_s = a_s·x̂0 + b_s·ε̂ (DESIGN.md §2 "Noise convention").

    For flow matching (a_s, b_s) = (1 − s, s) and this is exactly the Euler step x_σ + (s − σ)·v.
    Coefficients broadcast: pass floats or tensors shaped like ``x0`` or ``(b, 1, 1, 1, 1)``.
    """
    return a_target * x0 + b_target * eps
