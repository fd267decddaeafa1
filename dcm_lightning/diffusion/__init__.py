"""Schedules, grids, parameterizations and the deterministic jump: pure functions, no modules."""

from dcm_lightning.diffusion.grids import (
    DEFAULT_BOUNDARY_INDEX,
    grid_sigma,
    shifted_sigma,
    sigma_at,
    teacher_sigmas,
    validate_boundary_index,
)
from dcm_lightning.diffusion.guidance import classifier_free_guidance
from dcm_lightning.diffusion.parameterization import FlowMatching, Parameterization, VPrediction
from dcm_lightning.diffusion.solvers import ddim_jump, renoise

__all__ = [
    "FlowMatching",
    "Parameterization",
    "VPrediction",
    "DEFAULT_BOUNDARY_INDEX",
    "classifier_free_guidance",
    "ddim_jump",
    "renoise",
    "grid_sigma",
    "shifted_sigma",
    "sigma_at",
    "teacher_sigmas",
    "validate_boundary_index",
]
