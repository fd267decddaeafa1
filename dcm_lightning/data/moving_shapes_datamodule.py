"""LightningDataModule for teacher pretraining on MovingShapes."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from dcm_lightning.data.loaders import stream_loader
from dcm_lightning.errors import UserError
from dcm_lightning.moving_shapes import MovingShapesSpec
from dcm_lightning.moving_shapes.datasets import MovingShapesClips


class MovingShapesDataModule(L.LightningDataModule):
    """Rendered clips for training; a small fixed prompt suite for sampling checks during validation.

    Args:
        spec: clip geometry (frames, size, speeds, stripe period).
        batch_size: clips per training step.
        num_train_clips: length of the (procedural, storage-free) training set; one epoch.
        seed: training clips are drawn from this seed; the validation suite uses ``seed + 1``.
        num_workers: DataLoader worker processes (0 renders in the training process).
    """

    def __init__(
        self,
        spec: MovingShapesSpec = MovingShapesSpec(),
        batch_size: int = 32,
        num_train_clips: int = 1_000_000,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.batch_size = batch_size
        self.num_train_clips = num_train_clips
        self.seed = seed
        self.num_workers = num_workers

    def train_dataloader(self) -> DataLoader:
        clips = MovingShapesClips(self.num_train_clips, self.seed, self.spec)
        # A resumed run continues with the clip after the last one trained on (Lightning restores
        # the step counter before it asks for dataloaders), so resuming repeats no clip; the loader's
        # length still counts from the first clip, so the epoch ends where an uninterrupted run's does.
        trainer = self.trainer
        start = trainer.global_step * trainer.accumulate_grad_batches * self.batch_size if trainer else 0
        if start >= len(clips):
            raise UserError(f"num_train_clips = {len(clips)} is used up at step {trainer.global_step}; raise it.")
        return stream_loader(clips, range(len(clips)), self.batch_size, self.num_workers, start=start)
