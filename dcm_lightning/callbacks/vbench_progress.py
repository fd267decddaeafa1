"""VBenchProgress: a small VBench subset scored while a run trains, so that the run shows VBench-style
progress — ``TrainingSamples``' rounds (every rank samples, rank 0 decodes and writes) with VBench's
prompts and file names, then VBench's own evaluator on the round's folder (the same code as
``validate`` with a VBench config)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn

from dcm_lightning.callbacks.training_samples import TrainingSamples
from dcm_lightning.data.vbench_prompts import (
    load_full_info,
    select_prompts,
    vbench_info_path,
    vbench_jobs,
)
from dcm_lightning.evaluation.vbench_evaluator import run_vbench


class VBenchProgress(TrainingSamples):
    """Every ``every_n_steps`` optimizer steps the student generates the first ``prompts_per_dimension``
    VBench prompts of each of ``dimensions`` (``videos_per_prompt`` each, noise as in ``validate``:
    prompt p's video i from ``clip_seed(seed, p·videos_per_prompt + i)``) into
    ``<run>/vbench/step-<global_step>/<prompt>-<index>.mp4``; rank 0 then runs VBench's evaluator on that
    folder and logs ``vbench/<dimension>`` to every logger at ``trainer.global_step``. Dimensions VBench
    cannot run (no vbench install, missing weights) are named once in a warning, never logged as 0.
    Rounds keep ``TrainingSamples``' time budget (``max_seconds``); a round cut short scores what it wrote.

    Args:
        dimensions: VBench dimensions (its list's names, e.g. ``subject_consistency``).
        prompts_per_dimension, videos_per_prompt: the subset's size (e.g. 2 × 1 over 4 dimensions).
        every_n_steps, steps, seed, max_seconds, tiled_decode: as ``TrainingSamples``.
        teacher_at_start: also score the teacher once at the start (``vbench/teacher/…``), a baseline.
        evaluator_device: where VBench's models run (None: cuda when there is a GPU, else cpu).
        full_info: a ``VBench_full_info.json`` (None: the installed vbench package's).
    """

    folder_name = "vbench"

    def __init__(
        self,
        dimensions: list[str],
        prompts_per_dimension: int = 2,
        videos_per_prompt: int = 1,
        every_n_steps: int = 500,
        steps: int = 4,
        seed: int = 0,
        max_seconds: float = 900.0,
        teacher_at_start: bool = False,
        tiled_decode: bool = False,
        evaluator_device: str | None = None,
        full_info: str | None = None,
    ) -> None:
        self.info_path = Path(full_info) if full_info else vbench_info_path()
        prompts = select_prompts(load_full_info(self.info_path), dimensions, prompts_per_dimension)
        self.jobs = vbench_jobs(prompts, videos_per_prompt, seed)
        self.dimensions = list(dimensions)
        self.evaluator_device = evaluator_device or ("cuda" if torch.cuda.is_available() else "cpu")
        super().__init__(
            [job.text for job in self.jobs],
            every_n_steps=every_n_steps,
            steps=steps,
            seed=seed,
            max_seconds=max_seconds,
            teacher_at_start=teacher_at_start,
            tiled_decode=tiled_decode,
        )
        self._not_run_reported = False

    def video_name(self, index: int) -> str:
        return self.jobs[index].name

    def noise_seed(self, index: int) -> int:
        return self.jobs[index].seed

    def round_written(self, trainer: L.Trainer, kind: str, out: Path, count: int) -> None:
        outcome = run_vbench(
            out, self.dimensions, self.info_path, out / "vbench_results", "vbench", self.evaluator_device
        )
        prefix = "vbench/teacher" if kind == "teacher" else "vbench"
        metrics = {f"{prefix}/{name}": score for name, score in outcome.scores.items()}
        if metrics:
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)
        if outcome.not_run and not self._not_run_reported:
            self._not_run_reported = True
            reasons = "; ".join(f"{name}: {reason}" for name, reason in outcome.not_run.items())
            rank_zero_warn(f"VBenchProgress could not score {len(outcome.not_run)} dimension(s) ({reasons}).")
