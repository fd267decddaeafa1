"""``python -m dcm_lightning vbench-score``: VBench Total / Quality / Semantic from its result files."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from dcm_lightning.evaluation.vbench_score import read_vbench_results, vbench_scores


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dcm_lightning vbench-score",
        description="Read the per-dimension result JSON files VBench's evaluator writes ({dimension: [score, "
        "per-video]}) and print Total, Quality and Semantic with VBench's official normalization, weights and "
        "Total = (4·Quality + Semantic)/5. All 16 dimensions are needed; missing ones are named.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="result JSON files, or folders holding them")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    return parser


def main(argv: Sequence[str]) -> None:
    args = build_parser().parse_args(argv)
    scores = vbench_scores(read_vbench_results(args.paths))
    if args.json:
        print(json.dumps(scores, indent=2))
        return
    for name in ("total", "quality", "semantic"):
        print(f"{name:>8}  {100 * scores[name]:.2f} %")
