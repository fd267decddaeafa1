"""``python -m dcm_lightning export``: a training checkpoint → a self-contained pretrained folder."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

from dcm_lightning.checkpoints import MODULE_KEY, read_checkpoint_metadata, read_module_state
from dcm_lightning.generation import STUDENT_MODULES, student_module_from_checkpoint
from dcm_lightning.students import export_student
from dcm_lightning.teachers.tiny import TinyTeacher


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dcm_lightning export",
        description="Export a training checkpoint as a self-contained folder: OUT/model.safetensors plus "
        "OUT/config.json. A TeacherModule checkpoint gives its EMA teacher (architecture, shift, guidance, "
        "clip geometry, provenance); a distilled student's (SemE, LCM/PCM, DetE) gives the student with its "
        "sampling schedule — for DCM the semantic expert plus the detail expert's adapters and Ψ. `sample "
        "--checkpoint OUT` loads either without the training config.",
    )
    parser.add_argument("--checkpoint", required=True, help="a .ckpt written by `fit`")
    parser.add_argument("--out", required=True, help="output folder (created; files in it are replaced)")
    parser.add_argument(
        "--dtype",
        choices=("float16", "float32"),
        default=None,
        help="stored weight precision (default: float16 for a teacher, float32 for a student)",
    )
    return parser


def main(argv: Sequence[str]) -> None:
    args = build_parser().parse_args(argv)
    # Metadata first (no weights), then only the module's weights: never the optimizer states.
    checkpoint = read_checkpoint_metadata(args.checkpoint)
    student = checkpoint.get(MODULE_KEY) in STUDENT_MODULES
    if student:
        module, _ = student_module_from_checkpoint(args.checkpoint)
    else:
        weights = read_module_state(args.checkpoint)
        teacher = TinyTeacher.from_checkpoint(args.checkpoint, {**checkpoint, "state_dict": weights})
    dtype = args.dtype or ("float32" if student else "float16")
    provenance = {
        "source_checkpoint": Path(args.checkpoint).name,
        "global_step": int(checkpoint.get("global_step", 0)),
        "weights": "student" if student else "exponential moving average",
        "stored_dtype": dtype,
        "hyper_parameters": {k: v for k, v in checkpoint.get("hyper_parameters", {}).items() if not k.startswith("_")},
    }
    if student:
        export_student(module, args.out, provenance, dtype=getattr(torch, dtype))
    else:
        teacher.save_pretrained(args.out, provenance, dtype=getattr(torch, dtype))
    print(f"exported step {provenance['global_step']} to {args.out}/ (config.json, model.safetensors)")
