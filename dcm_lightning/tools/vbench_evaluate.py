"""``python -m dcm_lightning vbench-evaluate``: VBench's own evaluator on generated videos — the scoring
half of ``validate --config configs/vbench_*.yaml`` for one folder."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from dcm_lightning.data.vbench_prompts import vbench_info_path
from dcm_lightning.errors import UserError
from dcm_lightning.evaluation.vbench_evaluator import run_vbench, vbench_report, write_model_report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dcm_lightning vbench-evaluate",
        description="Score a folder written by `vbench-generate` (or `validate` with a VBench config) with VBench's "
        "own evaluator in standard mode, one dimension at a time (needs the full vbench install with its "
        "dependencies and model weights); writes VIDEOS/results.json and results.md: each dimension's score, each "
        "that could not run with the reason, and Total/Quality/Semantic by VBench's official aggregation when all 16 "
        "dimensions ran.",
    )
    parser.add_argument("--videos", required=True, help="the folder of videos and manifest.json")
    parser.add_argument("--dimensions", nargs="+", default=None, help="default: the manifest's dimensions")
    parser.add_argument("--out", default=None, help="VBench's output folder (default: VIDEOS/vbench_results)")
    parser.add_argument("--name", default="dcm", help="run name; VBench writes <name>-<dimension>_eval_results.json")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser


def main(argv: Sequence[str]) -> None:
    args = build_parser().parse_args(argv)
    videos = Path(args.videos)
    manifest_path = videos / "manifest.json"
    if not manifest_path.is_file():
        raise UserError(f"{videos} has no manifest.json; write the videos with `vbench-generate` first.")
    manifest = json.loads(manifest_path.read_text())
    dimensions = args.dimensions or manifest["dimensions"]
    info = Path(manifest["prompt_source"]["file"])
    info = info if info.is_file() else vbench_info_path()
    out = Path(args.out) if args.out else videos / "vbench_results"
    outcome = run_vbench(videos, list(dimensions), info, out, args.name, args.device)
    if not outcome.scores and outcome.not_run:
        raise UserError(next(iter(outcome.not_run.values())) + ".")
    label = manifest.get("model", {}).get("label", videos.name)
    print(write_model_report(videos, vbench_report(label, outcome, manifest)))
