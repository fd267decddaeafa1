"""Training callbacks: diagnostics and sample checks that read a run without changing it, and the
guards that keep a run safe (non-finite values, preemption)."""

from dcm_lightning.callbacks.noise_level_gradients import NoiseLevelGradients
from dcm_lightning.callbacks.non_finite import NonFiniteGuard
from dcm_lightning.callbacks.oracle_samples import OracleSamples
from dcm_lightning.callbacks.preemption import Preemption
from dcm_lightning.callbacks.training_samples import TrainingSamples
from dcm_lightning.callbacks.vbench_progress import VBenchProgress

__all__ = ["NoiseLevelGradients", "NonFiniteGuard", "OracleSamples", "Preemption", "TrainingSamples", "VBenchProgress"]
