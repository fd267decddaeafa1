"""Faults injected into real runs (named in a config's callbacks or plugins, like any user callback)."""

from __future__ import annotations

import io
import os
import signal

import lightning as L
import torch

from dcm_lightning.checkpoints import AtomicCheckpointIO


class PoisonBatch(L.Callback):
    """Fill the first floating-point tensor of the batch of optimizer step ``at_step`` with ``value``
    (NaN by default) — on ``rank`` only, if given: what a corrupt sample or an overflow does to a loss."""

    def __init__(self, at_step: int, value: float = float("nan"), rank: int | None = None) -> None:
        self.at_step, self.value, self.rank = at_step, value, rank

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step != self.at_step or self.rank not in (None, trainer.global_rank):
            return
        items = batch.values() if isinstance(batch, dict) else batch
        first = next(t for t in items if torch.is_tensor(t) and t.is_floating_point())
        first.fill_(self.value)


class TornCheckpointIO(AtomicCheckpointIO):
    """The presets' atomic writer, killed (SIGKILL) halfway through writing the checkpoint of step
    ``at_step``: a write cut off midway."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if checkpoint.get("global_step") == self.at_step:

            def torn(obj, target, *args, **kwargs) -> None:
                buffer = io.BytesIO()
                original(obj, buffer)
                with open(target, "wb") as file:
                    file.write(buffer.getvalue()[: buffer.tell() // 2])
                    file.flush()
                    os.fsync(file.fileno())
                os.kill(os.getpid(), signal.SIGKILL)

            original, torch.save = torch.save, torn
        super().save_checkpoint(checkpoint, path, storage_options)


class PoisonWeights(L.Callback):
    """Set the first trainable weight to NaN after optimizer step ``at_step``, just before that step's
    checkpoint is written (Lightning runs checkpoint callbacks last)."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if trainer.global_step == self.at_step:
            with torch.no_grad():
                next(p for p in pl_module.parameters() if p.requires_grad).fill_(float("nan"))
