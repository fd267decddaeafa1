"""Training callbacks: diagnostics that read a run without changing it."""

from dcm_lightning.callbacks.noise_level_gradients import NoiseLevelGradients

__all__ = ["NoiseLevelGradients"]
