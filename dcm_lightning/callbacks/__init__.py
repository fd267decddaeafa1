"""Training callbacks: diagnostics and sample checks that read a run without changing it."""

from dcm_lightning.callbacks.noise_level_gradients import NoiseLevelGradients
from dcm_lightning.callbacks.oracle_samples import OracleSamples
from dcm_lightning.callbacks.training_samples import TrainingSamples
from dcm_lightning.callbacks.vbench_progress import VBenchProgress

__all__ = ["NoiseLevelGradients", "OracleSamples", "TrainingSamples", "VBenchProgress"]
