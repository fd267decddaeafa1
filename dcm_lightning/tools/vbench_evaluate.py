"""``python -m dcm_lightning vbench-evaluate``: run VBench's own evaluator on generated videos."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from dcm_lightning.errors import UserError
from dcm_lightning.evaluation.vbench_prompts import vbench_info_path
from dcm_lightning.evaluation.vbench_score import (
    QUALITY_DIMENSIONS,
    SEMANTIC_DIMENSIONS,
    read_vbench_results,
    vbench_scores,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dcm_lightning vbench-evaluate",
        description="Score a folder written by `vbench-generate` with VBench's own evaluator (standard mode; needs "
        "the full vbench install with its dependencies and model weights), then print its raw per-dimension scores "
        "and, when all 16 dimensions are present, Total/Quality/Semantic with VBench's official aggregation.",
    )
    parser.add_argument("--videos", required=True, help="the folder of videos and manifest.json")
    parser.add_argument("--dimensions", nargs="+", default=None, help="default: the manifest's dimensions")
    parser.add_argument("--out", default=None, help="VBench's output folder (default: VIDEOS/vbench_results)")
    parser.add_argument("--name", default="dcm", help="run name; VBench writes <name>_eval_results.json")
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
    try:
        from vbench import VBench
    except ImportError as error:
        raise UserError(
            f"VBench's evaluator cannot be imported ({error}); install vbench with its dependencies and weights "
            "to score videos (generating them needs only `pip install --no-deps vbench`)."
        ) from None
    out = Path(args.out) if args.out else videos / "vbench_results"
    VBench(args.device, str(info), str(out)).evaluate(
        videos_path=str(videos), name=args.name, dimension_list=list(dimensions), mode="vbench_standard"
    )
    scores = read_vbench_results([out / f"{args.name}_eval_results.json"])
    for name, score in scores.items():
        print(f"{name:>24}  {score:.4f}")
    missing = [d for d in (*QUALITY_DIMENSIONS, *SEMANTIC_DIMENSIONS) if d not in scores]
    if missing:
        print(f"Total/Quality/Semantic need all 16 dimensions; missing: {', '.join(missing)}.")
        return
    for name, value in vbench_scores(scores).items():
        print(f"{name:>24}  {100 * value:.2f} %")
