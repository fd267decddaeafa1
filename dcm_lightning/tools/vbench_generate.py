"""``python -m dcm_lightning vbench-generate``: a VBench prompt subset's videos, named as VBench reads
them — the generation half of ``validate --config configs/vbench_*.yaml`` (``VBenchModule``) for one
model on one device."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import lightning as L

from dcm_lightning.data.vbench_datamodule import VBenchDataModule
from dcm_lightning.evaluation.bench_module import EvaluatedModel
from dcm_lightning.evaluation.vbench_module import VBenchModule
from dcm_lightning.tools.options import add_device_options, add_video_options, device_of, video_of


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dcm_lightning vbench-generate",
        description="Generate the videos of a VBench prompt subset for VBench's standard mode: the first K prompts "
        "of each chosen dimension in VBench_full_info.json (from the vbench package), N videos per prompt named "
        "'{prompt}-{index}.mp4', plus OUT/manifest.json (prompt source, seeds, fps, resolution, frames, steps, "
        "guidance, prompt augmentation). Existing videos are kept, so an interrupted run resumes. Several models "
        "over all GPUs of a job, scored in the same command: `validate --config configs/vbench_<teacher>.yaml`.",
    )
    parser.add_argument("--checkpoint", default=None, help="teacher or student (default: the shipped tiny teacher)")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's own)")
    parser.add_argument("--guidance-scale", type=float, default=None, help="teachers only (default: their own)")
    parser.add_argument("--dimensions", nargs="+", required=True, help="VBench dimensions, e.g. color scene, or all")
    parser.add_argument("--prompts-per-dimension", type=int, default=2, help="prompts per dimension (default 2)")
    parser.add_argument("--videos-per-prompt", type=int, default=5, help="videos per prompt (VBench: 5)")
    parser.add_argument("--seed", type=int, default=0, help="base seed of the initial noise (default 0)")
    parser.add_argument("--batch-size", type=int, default=1, help="videos generated together (default 1)")
    parser.add_argument(
        "--fps", type=int, default=None, help="frame rate of the mp4 files (default: the model's, e.g. Wan 16, tiny 8)"
    )
    parser.add_argument(
        "--augmented-prompts",
        default=None,
        help="JSON object {VBench prompt: augmented prompt}: generate from the augmented text, name by the original",
    )
    parser.add_argument("--full-info", default=None, help="a VBench_full_info.json (default: the vbench package's)")
    parser.add_argument("--out", required=True, help="folder for the videos and manifest.json")
    add_video_options(parser)
    add_device_options(parser)
    return parser


def main(argv: Sequence[str]) -> None:
    args = build_parser().parse_args(argv)
    out = Path(args.out).resolve()
    dimensions = "all" if args.dimensions == ["all"] else args.dimensions
    data = VBenchDataModule(
        dimensions,
        args.prompts_per_dimension,
        args.videos_per_prompt,
        args.seed,
        args.augmented_prompts,
        args.full_info,
        args.batch_size,
    )
    device = device_of(args)
    model = EvaluatedModel(out.name, args.checkpoint, args.steps, args.guidance_scale)
    video = video_of(args)
    module = VBenchModule([model], str(out.parent), evaluate=False, fps=args.fps, dtype=args.dtype, **video)
    accelerator, devices = ("cpu", 1) if device.type == "cpu" else (device.type, [device.index or 0])
    trainer = L.Trainer(accelerator=accelerator, devices=devices, logger=False, enable_model_summary=False)
    trainer.validate(module, datamodule=data, verbose=False)
    print(f"{len(data.jobs)} videos of {len(data.prompts)} prompts in {out}; manifest.json written")
