"""Classifier-free guidance on any network output (v, ε or x̂0 alike: the combination is linear)."""

from torch import Tensor


def classifier_free_guidance(conditional: Tensor, unconditional: Tensor, scale: float) -> Tensor:
    """Ho & Salimans (2022): out = uncond + scale · (cond − uncond); scale 1 is the plain conditional."""
    return unconditional + scale * (conditional - unconditional)
