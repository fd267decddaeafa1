"""A callback for experiments/gpu/fit_wan_fsdp.py: wall time of every training batch (synchronized on
CUDA) and the peak GPU memory, written as JSON when training ends (rank 0)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L
import torch


class StepTimer(L.Callback):
    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.seconds: list[float] = []
        self._start = 0.0

    def _sync(self, trainer: L.Trainer) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize(trainer.strategy.root_device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync(trainer)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync(trainer)
        self.seconds.append(time.perf_counter() - self._start)

    def on_train_end(self, trainer, pl_module) -> None:
        device = trainer.strategy.root_device
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        if trainer.global_rank == 0:
            record = {"batch_seconds": self.seconds, "peak_memory_gib": peak, "global_step": trainer.global_step}
            self.out.write_text(json.dumps(record, indent=1))
