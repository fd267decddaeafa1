"""Preemption: SIGTERM — what a cluster sends before it preempts a job or when its time runs out — and
SLURM's requeue signal end a run at the next step boundary with a checkpoint, and the process exits
with ``PREEMPTED_EXIT`` so that its job script requeues it (scripts/slurm/dcm_fit.sbatch).

Lightning turns SIGTERM into a flag that every rank reads at the next batch (rank 0's, broadcast),
then raises ``SIGTERMException`` on all ranks; this callback saves the checkpoint there —
``<checkpoints>/preempted-step=N.ckpt`` (a sharded folder under FSDP2), every rank taking part —
and points ``last.ckpt`` at it, so the job's usual ``--ckpt_path …/last.ckpt`` continues exactly
where it stopped. The extra signals (SLURM's ``SIGUSR1`` by default) are handled as SIGTERM.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info

PREEMPTED_EXIT = 143  # 128 + SIGTERM: the job script's cue to requeue


def point_last_at(checkpoint: Path) -> Path:
    """Make ``last.ckpt`` beside ``checkpoint`` a relative link to it, replaced in one rename (a
    reader sees the old link or the new one, never none)."""
    last = checkpoint.parent / "last.ckpt"
    if last.is_dir() and not last.is_symlink():
        shutil.rmtree(last)  # a sharded last.ckpt of an older run: a folder cannot be renamed over
    staging = checkpoint.parent / ".last.ckpt.link"
    staging.unlink(missing_ok=True)
    staging.symlink_to(checkpoint.name)
    os.replace(staging, last)
    return last


class Preemption(L.Callback):
    """Save a resumable checkpoint and exit with status 143 on SIGTERM and on ``signals``.

    Args:
        signals: further signals handled as SIGTERM (names; default SLURM's requeue signal ``SIGUSR1``).
    """

    def __init__(self, signals: list[str] | None = None) -> None:
        self.signals = [getattr(signal, name) for name in (["SIGUSR1"] if signals is None else signals)]
        self._previous: dict = {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Before Lightning registers its handlers (it leaves a signal that already has one alone).
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, lambda *_: os.kill(os.getpid(), signal.SIGTERM))

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        folder = next((c.dirpath for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)
        folder = Path(folder or Path(trainer.default_root_dir) / "checkpoints")
        path = folder / f"preempted-step={trainer.global_step}.ckpt"
        trainer.save_checkpoint(path)
        if trainer.is_global_zero:
            point_last_at(path)
            rank_zero_info(
                f"preempted at step {trainer.global_step}: saved {path}; {folder / 'last.ckpt'} points at it "
                "(the same command with --ckpt_path on it continues)"
            )
        trainer.strategy.barrier()
