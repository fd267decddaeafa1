"""``python -m dcm_lightning teacher-eval``: oracle attribute accuracies of a teacher's N-step samples."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from dcm_lightning.checkpoints import load_generator
from dcm_lightning.data.moving_shapes import all_attributes
from dcm_lightning.data.moving_shapes.datasets import prompt_suite
from dcm_lightning.errors import UserError
from dcm_lightning.evaluation.suite import evaluate_on_suite
from dcm_lightning.media import write_png_grid


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dcm_lightning teacher-eval",
        description="Sample a fixed prompt suite with a teacher or a distilled student and score every video "
        "with the MovingShapes oracle; writes shape/color/texture/direction accuracies as JSON.",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="teacher folder, TeacherModule .ckpt or distilled student .ckpt (default: the shipped teacher)",
    )
    parser.add_argument("--num-prompts", type=int, default=64, help="attribute combinations in the suite (default 64)")
    parser.add_argument("--seeds-per-prompt", type=int, default=2, help="noise seeds per prompt (default 2)")
    parser.add_argument("--suite-seed", type=int, default=1000, help="seed that picks the suite (default 1000)")
    parser.add_argument("--steps", type=int, default=None, help="steps (default: teacher N, student 4)")
    parser.add_argument("--guidance-scale", type=float, default=None, help="a teacher's guidance (default: its own)")
    parser.add_argument("--batch-size", type=int, default=32, help="videos sampled together (default 32)")
    parser.add_argument("--out", default="experiments/teacher_tiny/eval.json", help="where to write the JSON")
    parser.add_argument("--grid", default=None, help="optional PNG of the first 16 videos")
    return parser


def main(argv: Sequence[str]) -> None:
    args = build_parser().parse_args(argv)
    if args.batch_size < 1 or args.seeds_per_prompt < 1:
        raise UserError("--batch-size and --seeds-per-prompt must be at least 1.")
    combinations = len(all_attributes())
    if not 0 < args.num_prompts <= combinations:
        raise UserError(
            f"--num-prompts must be in 1..{combinations} (the attribute combinations), got {args.num_prompts}."
        )
    generator = load_generator(args.checkpoint, args.steps, args.guidance_scale)
    cases = prompt_suite(args.num_prompts, args.seeds_per_prompt, args.suite_seed)
    scores, videos = evaluate_on_suite(generator, cases, args.batch_size)
    report = {
        **scores,
        "shift": generator.model.shift,
        "suite": {
            "num_prompts": args.num_prompts,
            "seeds_per_prompt": args.seeds_per_prompt,
            "suite_seed": args.suite_seed,
        },
        "model": f"{generator.kind}: {args.checkpoint or 'shipped tiny teacher'}",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    if args.grid:
        write_png_grid(args.grid, videos[:16])
    print(
        json.dumps(
            {k: report[k] for k in ("shape_acc", "color_acc", "texture_acc", "direction_acc", "n_videos", "steps")}
        )
    )
    print(f"wrote {out}")
