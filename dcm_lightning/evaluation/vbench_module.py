"""``validate`` for VBench subsets: every model row generates its videos of a VBench prompt subset over
all ranks of the job, then VBench's own evaluator scores them and VBench's official aggregation
writes each model's results (docs/design.md §3)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import lightning as L
import torch
from torch import Tensor, nn

from dcm_lightning.data.vbench_prompts import VBenchJob
from dcm_lightning.errors import UserError
from dcm_lightning.evaluation.bench_module import EvaluatedModel
from dcm_lightning.evaluation.vbench_evaluator import VBenchOutcome, run_vbench, vbench_report, write_model_report
from dcm_lightning.evaluation.vbench_score import dimension_name
from dcm_lightning.generation import load_sampler
from dcm_lightning.media import write_mp4
from dcm_lightning.sampling import Sampler


class VBenchModule(L.LightningModule):
    """Generates the (prompt, index) videos of the data module's subset (``VBenchDataModule``) with
    every model, each rank only its share, into ``<out_dir>/<label>/<prompt>-<index>.mp4`` (VBench's
    names; each file written under a temporary name and renamed). A video already there is skipped,
    so a killed ``validate`` rerun resumes without regenerating anything complete. After all ranks
    are done, rank 0 writes each model's ``manifest.json``, runs VBench's own evaluator on the folder
    (``evaluate``; dimensions it cannot run are named in the results, never scored 0) and writes
    ``results.json`` / ``results.md`` per model (Total, Quality, Semantic by VBench's official
    aggregation when all 16 dimensions ran), ``<out_dir>/results.md`` over all models, and logger
    scalars ``vbench/<label>/<dimension>`` (and ``…/total``, ``…/quality``, ``…/semantic``).

    Args:
        models: the rows (label, checkpoint — teacher folder or checkpoint, student checkpoint or
            exported folder; null: the shipped tiny teacher —, steps, guidance_scale); labels unique.
        out_dir: the run's folder: one subfolder per model.
        evaluate: run VBench's evaluator after generating (needs the full vbench install and its weights).
        evaluator_device: where VBench's models run (None: cuda when there is a GPU, else cpu).
        fps: frame rate of the mp4 files (None: each model's own, e.g. Wan 16, HunyuanVideo 24, tiny 8).
        dtype: the models' precision (None: each teacher's, bf16 for real teachers).
        num_frames, height, width: the video size of real models (None: each pipeline's own).
    """

    def __init__(
        self,
        models: list[EvaluatedModel],
        out_dir: str = "runs/vbench",
        evaluate: bool = True,
        evaluator_device: str | None = None,
        fps: int | None = None,
        dtype: str | None = None,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
    ) -> None:
        super().__init__()
        labels = [m.label for m in models]
        if not labels or len(set(labels)) != len(labels):
            raise UserError(f"VBench rows need unique labels; got {labels}.")
        bad = [label for label in labels if "/" in label or label.startswith(".")]
        if bad:
            raise UserError(f"row labels name folders under out_dir; {bad[0]!r} cannot be one.")
        self.models, self.out_dir, self.evaluate = list(models), Path(out_dir), evaluate
        self.evaluator_device = evaluator_device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.fps, self.model_dtype = fps, dtype
        self.video = {k: v for k, v in dict(num_frames=num_frames, height=height, width=width).items() if v}
        self.samplers: dict[str, Sampler] = {}
        self.networks = nn.ModuleDict()  # so that Lightning moves every model to the rank's device
        self.results: dict[str, dict] = {}

    def folder(self, label: str) -> Path:
        return self.out_dir / label

    def setup(self, stage: str) -> None:
        for model in self.models:
            if model.label not in self.samplers:
                sampler = load_sampler(
                    model.checkpoint, model.steps, model.guidance_scale, None, self.model_dtype, self.video
                )
                self.samplers[model.label] = sampler
                self.networks[model.label.replace(".", "_")] = sampler.model

    def configure_model(self) -> None:
        """Nothing is sharded: each rank holds whole models and generates its own videos (the data
        parallelism is over videos), under ``ModelParallelStrategy`` (the GPU preset) as under DDP."""

    def on_validation_epoch_start(self) -> None:
        if self.trainer.is_global_zero:  # what a killed run was writing (write_mp4's temporary folders)
            for model in self.models:
                self.folder(model.label).mkdir(parents=True, exist_ok=True)
                for partial in self.folder(model.label).glob(".partial-*"):
                    shutil.rmtree(partial, ignore_errors=True)
        self.trainer.strategy.barrier()

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        jobs: list[VBenchJob] = [self.trainer.datamodule.jobs[i] for i in batch.tolist()]
        for model in self.models:
            folder, sampler = self.folder(model.label), self.samplers[model.label]
            todo = [job for job in jobs if not (folder / job.name).exists()]
            if not todo:
                continue
            videos = sampler.videos([j.text for j in todo], [j.seed for j in todo], open_vocabulary=True)
            for job, video in zip(todo, videos.float().cpu(), strict=True):
                write_mp4(
                    folder / job.name, video, fps=self.fps or sampler.model.fps, upscale=sampler.model.display_upscale
                )

    def on_validation_epoch_end(self) -> None:
        self.trainer.strategy.barrier()  # every rank's videos are written
        if not self.trainer.is_global_zero:
            return
        data = self.trainer.datamodule
        summary = []
        for model in self.models:
            folder = self.folder(model.label)
            missing = [job.name for job in data.jobs if not (folder / job.name).exists()]
            if missing:
                raise UserError(
                    f"{len(missing)} videos of {model.label} are missing after generation, e.g. {missing[0]!r}."
                )
            manifest = self._manifest(model, data)
            (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            report = vbench_report(model.label, self._scores(folder, data), manifest)
            print(write_model_report(folder, report))
            self.results[model.label] = report
            self._log(model.label, report)
            summary.append(report)
        (self.out_dir / "results.md").write_text(summary_markdown(summary))

    def _scores(self, folder: Path, data) -> VBenchOutcome:
        if not self.evaluate:
            return VBenchOutcome(not_run={dimension_name(d): "evaluate: false (videos only)" for d in data.dimensions})
        return run_vbench(
            folder, data.dimensions, data.info_path, folder / "vbench_results", "vbench", self.evaluator_device
        )

    def _manifest(self, model: EvaluatedModel, data) -> dict:
        sampler = self.samplers[model.label]
        _, frames, height, width = sampler.model.video_shape()
        upscale = sampler.model.display_upscale
        records: dict[str, dict] = {}
        for job in data.jobs:
            record = records.setdefault(
                job.prompt, {"prompt": job.prompt, "generated_from": job.text, "dimensions": list(job.dimensions)}
            )
            record.setdefault("videos", []).append({"file": job.name, "seed": job.seed})
        return {
            **data.settings,
            "videos": len(data.jobs),
            "fps": self.fps or sampler.model.fps,
            "frames": frames,
            "resolution": {"height": height * upscale, "width": width * upscale, "generated": [height, width]},
            "steps": sampler.steps,
            "guidance_scale": sampler.guidance_scale,
            "model": {
                "label": model.label,
                "kind": sampler.kind,
                "checkpoint": model.checkpoint or "shipped tiny teacher",
            },
            "prompts": list(records.values()),
        }

    def _log(self, label: str, report: dict) -> None:
        if self.logger is None:
            return
        metrics = {f"vbench/{label}/{name}": score for name, score in report["dimensions"].items()}
        metrics.update({f"vbench/{label}/{k}": v for k, v in (report["official"] or {}).items()})
        if metrics:
            self.logger.log_metrics(metrics, step=self.trainer.global_step)


def summary_markdown(reports: list[dict]) -> str:
    """One row per model: Total / Quality / Semantic (— until all 16 dimensions ran) and each dimension."""
    dimensions = sorted({d for r in reports for d in (*r["dimensions"], *r["not_run"])})
    header = ["model", "Total", "Quality", "Semantic", *dimensions]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for report in reports:
        official = report["official"] or {}
        cells = [
            report["label"],
            *(f"{100 * official[k]:.2f} %" if k in official else "—" for k in ("total", "quality", "semantic")),
        ]
        cells += [f"{report['dimensions'][d]:.4f}" if d in report["dimensions"] else "not run" for d in dimensions]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
