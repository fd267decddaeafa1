"""``python -m dcm_lightning minibench``: MiniBench of several models from the command line — the same
MiniBenchModule ``validate … --config configs/eval_tiny.yaml`` runs, without writing a config."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from dcm_lightning.errors import UserError
from dcm_lightning.evaluation import EvaluatedModel, run_minibench
from dcm_lightning.moving_shapes import all_attributes
from dcm_lightning.tools.options import device_of


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dcm_lightning minibench",
        description="Sample one held-out MovingShapes prompt suite (same prompts, same noise) with each model "
        "and score every video with MiniBench; writes OUT/results.json and OUT/results.md (Total, Quality, "
        "Semantic, every dimension, agreement with the reference, latency, NFE). The same code as "
        "`validate … --config configs/eval_tiny.yaml`, whose YAML lists the models instead.",
    )
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="LABEL=PATH[:STEPS]",
        help="a model: a teacher folder or .ckpt, a student .ckpt or exported folder, or 'shipped' for the shipped "
        "tiny teacher; STEPS defaults to the model's own. Repeat for each model; the first is the reference.",
    )
    parser.add_argument("--num-prompts", type=int, default=32, help="attribute combinations in the suite (default 32)")
    parser.add_argument("--seeds-per-prompt", type=int, default=2, help="noise seeds per prompt (default 2)")
    parser.add_argument("--suite-seed", type=int, default=1000, help="seed that picks the suite (default 1000)")
    parser.add_argument("--batch-size", type=int, default=32, help="videos sampled together (default 32)")
    parser.add_argument("--latency-repeats", type=int, default=3, help="timed single-video samples (default 3)")
    parser.add_argument("--out", required=True, help="folder for results.json and results.md")
    parser.add_argument(
        "--device",
        default=None,
        help="where the models run: cpu, cuda, cuda:N (default: cuda when available, else cpu); MiniBench scores "
        "the tiny tier, whose models run in float32",
    )
    return parser


def parse_model(spec: str) -> EvaluatedModel:
    label, separator, rest = spec.partition("=")
    if not separator or not label or not rest:
        raise UserError(
            f"--model {spec!r} is not LABEL=PATH[:STEPS], e.g. dcm-4=runs/dete_tiny/checkpoints/last.ckpt:4."
        )
    path, _, steps = rest.rpartition(":") if rest.rpartition(":")[2].isdigit() else (rest, "", "")
    return EvaluatedModel(label, None if path == "shipped" else path, int(steps) if steps else None)


def main(argv: Sequence[str]) -> None:
    args = build_parser().parse_args(argv)
    combinations = len(all_attributes())
    if not 0 < args.num_prompts <= combinations:
        raise UserError(
            f"--num-prompts must be in 1..{combinations} (the attribute combinations), got {args.num_prompts}."
        )
    if min(args.seeds_per_prompt, args.batch_size, args.latency_repeats) < 1:
        raise UserError("--seeds-per-prompt, --batch-size and --latency-repeats must be at least 1.")
    models = [parse_model(spec) for spec in args.model]
    run_minibench(  # prints the table and where it wrote it
        models,
        args.out,
        num_prompts=args.num_prompts,
        seeds_per_prompt=args.seeds_per_prompt,
        suite_seed=args.suite_seed,
        batch_size=args.batch_size,
        latency_repeats=args.latency_repeats,
        device=device_of(args),
    )
