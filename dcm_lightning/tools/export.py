"""``python -m dcm_lightning export``: a training checkpoint → a self-contained pretrained folder."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

from dcm_lightning.checkpoints import MODULE_KEY, read_checkpoint_metadata, read_module_state
from dcm_lightning.errors import UserError
from dcm_lightning.generation import STUDENT_MODULES, student_module_from_checkpoint
from dcm_lightning.students import EXPORT_STEPS, export_student
from dcm_lightning.teachers.tiny import TinyTeacher


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dcm_lightning export",
        description="Export a training checkpoint as a self-contained folder with its config.json. A "
        "TeacherModule checkpoint gives its EMA teacher (model.safetensors: architecture, shift, guidance, clip "
        "geometry, provenance); a tiny student's (SemE, LCM/PCM, DetE) the student with its sampling schedule "
        "(model.safetensors). The student of a real (diffusers) teacher is a diffusers pipeline folder: "
        "model_index.json, transformer/ (the semantic expert), for DCM transformer_2/ (the detail expert, "
        "adapters merged) with the switch at boundary_ratio, a scheduler/ replaying the student's σ lists for "
        "--steps, the teacher's text encoders, tokenizers and VAE; and for a LoRA detail expert also "
        "detail_lora/pytorch_lora_weights.safetensors (diffusers' LoRA format, rank and alpha in its metadata) "
        "+ detail_psi.safetensors (Ψ). HunyuanVideo and CogVideoX students name their pipeline class (in "
        "dcm_lightning.pipelines) through a one-line pipeline.py: load them with trust_remote_code=True. "
        "`sample --checkpoint OUT` loads any of them; README 'Use your student' shows plain diffusers.",
    )
    parser.add_argument("--checkpoint", required=True, help="a .ckpt written by `fit`")
    parser.add_argument("--out", required=True, help="output folder (created; files in it are replaced)")
    parser.add_argument(
        "--dtype",
        choices=("bfloat16", "float16", "float32"),
        default=None,
        help="stored weight precision (default: bfloat16 for a real teacher's student, float32 for a tiny "
        "student, float16 for a tiny teacher)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        nargs="+",
        default=None,
        metavar="N",
        help=f"real teachers' students: the step counts the pipeline's scheduler replays (default "
        f"{' '.join(map(str, EXPORT_STEPS))} and the student's default steps)",
    )
    parser.add_argument(
        "--link-teacher-parts",
        action="store_true",
        help="real teachers' students: symlink the teacher's text encoders, tokenizers and VAE instead of "
        "copying them (the export then needs the teacher folder in place)",
    )
    parser.add_argument(
        "--no-merged-detail",
        action="store_true",
        help="real teachers' DCM students: write the detail expert as LoRA + Ψ only (no transformer_2/, so "
        "no model_index.json: apply them to a pipeline with the README's recipe; `sample` loads the folder)",
    )
    return parser


def main(argv: Sequence[str]) -> None:
    args = build_parser().parse_args(argv)
    if any(n < 1 for n in args.steps or ()):
        raise UserError(f"--steps must be positive step counts, got {args.steps}.")
    # Metadata first (no weights), then only the module's weights: never the optimizer states.
    checkpoint = read_checkpoint_metadata(args.checkpoint)
    student = checkpoint.get(MODULE_KEY) in STUDENT_MODULES
    if student:
        module, _ = student_module_from_checkpoint(args.checkpoint)
    else:
        weights = read_module_state(args.checkpoint)
        teacher = TinyTeacher.from_checkpoint(args.checkpoint, {**checkpoint, "state_dict": weights})
    real = student and not isinstance(module.student, TinyTeacher)
    if (args.steps or args.link_teacher_parts or args.no_merged_detail) and not real:
        raise UserError(
            "--steps, --link-teacher-parts and --no-merged-detail apply to the students of real (diffusers) teachers."
        )
    dtype = args.dtype or ("bfloat16" if real else "float32" if student else "float16")
    provenance = {
        "source_checkpoint": Path(args.checkpoint).name,
        "global_step": int(checkpoint.get("global_step", 0)),
        "weights": "student" if student else "exponential moving average",
        "stored_dtype": dtype,
        "hyper_parameters": {k: v for k, v in checkpoint.get("hyper_parameters", {}).items() if not k.startswith("_")},
    }
    if student:
        export_student(
            module,
            args.out,
            provenance,
            getattr(torch, dtype),
            steps=args.steps,
            link_teacher_parts=args.link_teacher_parts,
            merged_detail=not args.no_merged_detail,
        )
    else:
        teacher.save_pretrained(args.out, provenance, dtype=getattr(torch, dtype))
    parts = "config.json, a diffusers pipeline folder" if real else "config.json, model.safetensors"
    print(f"exported step {provenance['global_step']} to {args.out}/ ({parts})")
