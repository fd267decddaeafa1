"""``python -m dcm_lightning compare``: several models on one prompt suite, side by side."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from dcm_lightning.checkpoints import load_generator
from dcm_lightning.data.moving_shapes.datasets import prompt_suite
from dcm_lightning.errors import UserError
from dcm_lightning.evaluation.suite import evaluate_on_suite

COLUMNS = ("shape_acc", "color_acc", "texture_acc", "direction_acc", "all_acc", "steps", "seconds_per_video")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dcm_lightning compare",
        description="Sample the same prompt suite (same prompts, same noise) with several teachers or students "
        "and print their oracle accuracies and sampling time per video as a table; writes them as JSON.",
    )
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="LABEL=PATH[:STEPS]",
        help="a model to compare: a teacher folder or .ckpt, a student .ckpt or exported folder, or 'shipped' "
        "for the shipped tiny teacher; STEPS defaults to the model's own. Repeat for each model.",
    )
    parser.add_argument("--num-prompts", type=int, default=32, help="attribute combinations in the suite (default 32)")
    parser.add_argument("--seeds-per-prompt", type=int, default=2, help="noise seeds per prompt (default 2)")
    parser.add_argument("--suite-seed", type=int, default=1000, help="seed that picks the suite (default 1000)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    return parser


def parse_model(spec: str) -> tuple[str, str | None, int | None]:
    label, separator, rest = spec.partition("=")
    if not separator or not label or not rest:
        raise UserError(
            f"--model {spec!r} is not LABEL=PATH[:STEPS], e.g. dcm-4=runs/dete_tiny/checkpoints/last.ckpt:4."
        )
    path, _, steps = rest.rpartition(":") if rest.rpartition(":")[2].isdigit() else (rest, "", "")
    return label, None if path == "shipped" else path, int(steps) if steps else None


def compare_models(models: Sequence[tuple[str, str | None, int | None]], cases) -> dict[str, dict]:
    """Oracle accuracies and sampling time of each (label, path, steps) on the same ``cases``."""
    results = {}
    for label, path, steps in models:
        generator = load_generator(path, steps)
        report, _ = evaluate_on_suite(generator, cases)
        results[label] = {**report, "model": f"{generator.kind}: {path or 'shipped tiny teacher'}"}
    return results


def markdown_table(results: dict[str, dict]) -> str:
    lines = ["| model | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(str(report[c]) for c in COLUMNS) + " |" for label, report in results.items()]
    return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
    args = build_parser().parse_args(argv)
    models = [parse_model(spec) for spec in args.model]
    cases = prompt_suite(args.num_prompts, args.seeds_per_prompt, args.suite_seed)
    summary = {
        "suite": {
            "num_prompts": args.num_prompts,
            "seeds_per_prompt": args.seeds_per_prompt,
            "suite_seed": args.suite_seed,
        },
        "models": compare_models(models, cases),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(markdown_table(summary["models"]))
    print(f"wrote {out}")
