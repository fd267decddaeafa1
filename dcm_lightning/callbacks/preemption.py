"""Preemption: SIGTERM — what a cluster sends before it preempts a job or when its time runs out — and
SLURM's requeue signal end a run at the end of the current step with a checkpoint, and the process
exits with ``PREEMPTED_EXIT`` so that its job script requeues it (scripts/slurm/dcm_fit.sbatch).

While training, the signal only sets a flag. At the end of every step the ranks agree whether any
of them was signalled (one all-reduce of a flag), and if so every rank raises Lightning's
``SIGTERMException`` there, together; this callback then saves the checkpoint —
``<checkpoints>/preempted-step=N.ckpt`` (a sharded folder under FSDP2), every rank taking part, in
the state a step-end checkpoint has — and points ``last.ckpt`` at it, so the job's usual
``--ckpt_path …/last.ckpt`` continues exactly where it stopped. (Lightning's own SIGTERM handler
broadcasts from inside the signal handler; on several processes that can meet another collective
and hang, which is why it is replaced while training.)
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
        self.signals = [signal.SIGTERM, *(getattr(signal, n) for n in (["SIGUSR1"] if signals is None else signals))]
        self._signalled = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        def note(signum, frame) -> None:
            self._signalled = True

        self._signalled = False
        for signum in self.signals:  # over Lightning's handlers; its teardown restores what was there before fit
            signal.signal(signum, note)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        stop = self._signalled
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)  # any rank signalled
        if stop:
            raise SIGTERMException()

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
