"""``python -m dcm_lightning export``: a training checkpoint → a self-contained pretrained folder."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

from dcm_lightning.checkpoints import teacher_module_from_checkpoint


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dcm_lightning export",
        description="Export a TeacherModule checkpoint's EMA weights as OUT/model.safetensors plus "
        "OUT/config.json (architecture, shift, guidance, clip geometry, provenance); `sample "
        "--checkpoint OUT` and every later stage load that folder without the training config.",
    )
    parser.add_argument("--checkpoint", required=True, help="a .ckpt written by `fit` with a TeacherModule")
    parser.add_argument("--out", required=True, help="output folder (created; files in it are replaced)")
    parser.add_argument(
        "--dtype", choices=("float16", "float32"), default="float16", help="stored weight precision (default float16)"
    )
    return parser


def main(argv: Sequence[str]) -> None:
    args = build_parser().parse_args(argv)
    module, checkpoint = teacher_module_from_checkpoint(args.checkpoint)
    provenance = {
        "source_checkpoint": Path(args.checkpoint).name,
        "global_step": int(checkpoint.get("global_step", 0)),
        "weights": "exponential moving average",
        "stored_dtype": args.dtype,
        "hyper_parameters": {k: v for k, v in checkpoint.get("hyper_parameters", {}).items() if not k.startswith("_")},
    }
    module.teacher(use_ema=True).save_pretrained(args.out, provenance, dtype=getattr(torch, args.dtype))
    print(f"exported step {provenance['global_step']} to {args.out}/ (config.json, model.safetensors)")
