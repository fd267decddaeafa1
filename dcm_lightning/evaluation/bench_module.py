"""``validate`` on the tiny tier: several teachers and students scored by MiniBench in one run."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L
import torch
from torch import nn
from tqdm.auto import tqdm

from dcm_lightning.data.prompt_suite import PromptSuiteDataModule
from dcm_lightning.errors import UserError
from dcm_lightning.evaluation.agreement import teacher_agreement
from dcm_lightning.evaluation.latency import count_forwards, nfe_bound_fraction, seconds_per_call
from dcm_lightning.evaluation.minibench import aggregate, score_video
from dcm_lightning.evaluation.report import write_report
from dcm_lightning.generation import load_sampler
from dcm_lightning.moving_shapes import parse_prompt
from dcm_lightning.moving_shapes.render import render_sample
from dcm_lightning.sampling import Sampler

DATA_ROW = "data"


@dataclass
class EvaluatedModel:
    """One row of the table.

    Args:
        label: the row's name, e.g. ``dcm-4``.
        checkpoint: a teacher folder or ``.ckpt``, a student ``.ckpt`` or exported folder; null for the
            shipped tiny teacher.
        steps: sampling steps (default: a teacher's N, a student's own default).
        guidance_scale: teachers only (default: the teacher's own).
    """

    label: str
    checkpoint: str | None = None
    steps: int | None = None
    guidance_scale: float | None = None


class MiniBenchModule(L.LightningModule):
    """Samples the prompt suite with every model from the same noise, scores each video with MiniBench,
    measures teacher agreement against the reference row, then latency per video (warm-up excluded,
    one video at a time, all models in this same process) and NFE per video; writes ``results.json``,
    ``results.md`` and logger scalars ``minibench/<label>/<metric>``.

    Args:
        models: the rows; labels must be unique.
        reference: the label of the row that agreement, speedup and the NFE bound are measured against.
        out_dir: where results.json and results.md go.
        latency_repeats: timed single-video samples per model (the median is reported).
        latency_warmup: untimed single-video samples before them.
        score_data: also score clean renders of the suite (the ``data`` row: each dimension's ceiling).
    """

    def __init__(
        self,
        models: list[EvaluatedModel],
        reference: str = "teacher-50",
        out_dir: str = "runs/minibench",
        latency_repeats: int = 3,
        latency_warmup: int = 1,
        score_data: bool = True,
    ) -> None:
        super().__init__()
        labels = [m.label for m in models]
        if len(set(labels)) != len(labels):
            raise UserError(f"model labels must be unique; got {labels}.")
        if reference not in labels:
            raise UserError(f"reference {reference!r} is none of the models' labels ({', '.join(labels)}).")
        # The reference first: the other rows of a batch are compared with its videos.
        self.models = sorted(models, key=lambda m: m.label != reference)
        self.reference, self.out_dir = reference, Path(out_dir)
        self.latency_repeats, self.latency_warmup, self.score_data = latency_repeats, latency_warmup, score_data
        self.samplers: dict[str, Sampler] = {}
        self.networks = nn.ModuleDict()  # so that Lightning moves every model to the device

    def setup(self, stage: str) -> None:
        for model in self.models:
            if model.label not in self.samplers:
                sampler = load_sampler(model.checkpoint, model.steps, model.guidance_scale)
                self.samplers[model.label] = sampler
                self.networks[model.label.replace(".", "_")] = sampler.model
        self._reset()

    def _reset(self) -> None:
        self.scores: dict[str, list[dict]] = {m.label: [] for m in self.models}
        if self.score_data:
            self.scores[DATA_ROW] = []
        self.agreement: dict[str, dict[str, list[float]]] = {m.label: {"psnr": [], "ssim": []} for m in self.models}
        self.rows_sampled: dict[str, int] = {m.label: 0 for m in self.models}
        self.videos_sampled = 0

    def on_validation_epoch_start(self) -> None:
        self._reset()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        prompts, seeds = list(batch["prompt"]), batch["seed"].tolist()
        attributes = [parse_prompt(p) for p in prompts]
        reference_videos = None
        for model in self.models:
            sampler = self.samplers[model.label]
            with count_forwards(sampler.model.network) as count:
                videos = sampler.videos(prompts, seeds).float().cpu()
            self.rows_sampled[model.label] += count.rows
            self.scores[model.label] += [
                score_video(v, a, sampler.model.spec) for v, a in zip(videos, attributes, strict=True)
            ]
            if model.label == self.reference:
                reference_videos = videos
            else:
                for name, values in teacher_agreement(videos, reference_videos).items():
                    self.agreement[model.label][name] += values
        if self.score_data:
            spec = self.samplers[self.reference].model.spec
            clean = [render_sample(a, s, spec)[0] for a, s in zip(attributes, seeds, strict=True)]
            self.scores[DATA_ROW] += [score_video(v, a, spec) for v, a in zip(clean, attributes, strict=True)]
        self.videos_sampled += len(prompts)

    def _latency(self, sampler: Sampler) -> float:
        prompt = self.trainer.datamodule.cases[0]
        return seconds_per_call(
            lambda: sampler.videos([prompt.prompt], [prompt.seed]),
            self.device,
            warmup=self.latency_warmup,
            repeats=self.latency_repeats,
        )

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        latency = {m.label: self._latency(self.samplers[m.label]) for m in tqdm(self.models, desc="latency")}
        reference_nfe = self.rows_sampled[self.reference] / self.videos_sampled
        rows = {}
        for model in self.models:
            sampler = self.samplers[model.label]
            nfe = self.rows_sampled[model.label] / self.videos_sampled
            speedup = latency[self.reference] / latency[model.label]
            agreement = self.agreement[model.label]
            rows[model.label] = {
                **asdict(model),
                "kind": sampler.kind,
                "steps": sampler.steps,
                "guidance_scale": sampler.guidance_scale,
                "minibench": aggregate(self.scores[model.label]),
                "psnr": _mean(agreement["psnr"]),
                "ssim": _mean(agreement["ssim"]),
                "nfe_per_video": nfe,
                "seconds_per_video": latency[model.label],
                "speedup": speedup,
                "nfe_bound": reference_nfe / nfe,
                "nfe_bound_fraction": nfe_bound_fraction(speedup, reference_nfe, nfe),
            }
        results = {
            "reference": self.reference,
            "suite": {**self.trainer.datamodule.settings, "videos": self.videos_sampled},
            "machine": {
                "device": str(self.device),
                "cpus": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
                "platform": platform.platform(),
            },
            "rows": rows,
        }
        if DATA_ROW in self.scores:
            results["data"] = {"minibench": aggregate(self.scores[DATA_ROW])}
        self.results = results
        if self.trainer.is_global_zero:
            print(write_report(results, self.out_dir))
        for label, row in rows.items():
            metrics = {**row["minibench"], **{k: row[k] for k in ("psnr", "ssim", "seconds_per_video", "speedup")}}
            if self.logger is not None:
                self.logger.log_metrics(
                    {f"minibench/{label}/{k}": v for k, v in metrics.items() if v is not None}, step=0
                )


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def run_minibench(
    models: list[EvaluatedModel],
    out_dir: str | Path,
    reference: str | None = None,
    num_prompts: int = 32,
    seeds_per_prompt: int = 2,
    suite_seed: int = 1000,
    batch_size: int = 32,
    latency_repeats: int = 3,
    score_data: bool = True,
    device: torch.device | str = "cpu",
) -> dict:
    """What ``validate … --config configs/eval_tiny.yaml`` runs, from Python: the MiniBenchModule over a
    PromptSuiteDataModule in a Trainer's validation loop on ``device``; returns the results it writes
    to ``out_dir``."""
    module = MiniBenchModule(
        models, reference or models[0].label, str(out_dir), latency_repeats=latency_repeats, score_data=score_data
    )
    data = PromptSuiteDataModule(num_prompts, seeds_per_prompt, suite_seed, batch_size)
    device = torch.device(device)
    accelerator, devices = ("cpu", 1) if device.type == "cpu" else (device.type, [device.index or 0])
    trainer = L.Trainer(accelerator=accelerator, devices=devices, logger=False, enable_model_summary=False)
    trainer.validate(module, datamodule=data, verbose=False)
    return module.results
