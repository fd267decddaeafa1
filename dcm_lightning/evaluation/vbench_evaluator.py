"""VBench's own evaluator on a folder of generated videos, one dimension at a time, and the report of
one model's scores: every dimension VBench ran, each it could not (named with the reason, never a
zero), and Total / Quality / Semantic by VBench's official aggregation when all 16 ran."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from dcm_lightning.evaluation.vbench_score import (
    QUALITY_DIMENSIONS,
    SEMANTIC_DIMENSIONS,
    dimension_name,
    read_vbench_results,
    vbench_scores,
)


@dataclass
class VBenchOutcome:
    """Raw per-dimension scores VBench wrote, and the dimensions it did not run with the reason (keyed by
    VBench's names with spaces, e.g. "temporal flickering")."""

    scores: dict[str, float] = field(default_factory=dict)
    not_run: dict[str, str] = field(default_factory=dict)


def run_vbench(videos: Path, dimensions: list[str], info: Path, out: Path, name: str, device: str) -> VBenchOutcome:
    """VBench's ``evaluate`` in standard mode on ``videos`` for each dimension separately (so that one
    dimension whose model weights are missing leaves the others scored); results under ``out``."""
    try:
        from vbench import VBench
    except ImportError as error:
        reason = f"VBench's evaluator cannot be imported ({error}); install vbench with its dependencies and weights"
        return VBenchOutcome(not_run={dimension_name(d): reason for d in dimensions})
    out.mkdir(parents=True, exist_ok=True)
    outcome = VBenchOutcome()
    for dimension in dimensions:  # VBench's list names: "temporal_flickering"
        key = dimension_name(dimension)
        run_name = f"{name}-{dimension}"
        try:
            VBench(device, str(info), str(out)).evaluate(
                videos_path=str(videos), name=run_name, dimension_list=[dimension], mode="vbench_standard"
            )
            scores = read_vbench_results([out / f"{run_name}_eval_results.json"])
        except Exception as error:  # VBench's own failure (missing weights, a dependency): named, not scored
            outcome.not_run[key] = f"{type(error).__name__}: {error}"
            continue
        if key not in scores:
            outcome.not_run[key] = "VBench wrote no score for it"
            continue
        outcome.scores[key] = scores[key]
    return outcome


def vbench_report(label: str, outcome: VBenchOutcome, manifest: dict) -> dict:
    """One model's results: its dimension scores, what did not run, and the official Total / Quality /
    Semantic (None, with the missing dimensions named, unless all 16 ran)."""
    missing = [d for d in (*QUALITY_DIMENSIONS, *SEMANTIC_DIMENSIONS) if d not in outcome.scores]
    return {
        "label": label,
        "dimensions": outcome.scores,
        "not_run": outcome.not_run,
        "official": None if missing else vbench_scores(outcome.scores),
        "missing_for_total": missing,
        "manifest": manifest,
    }


def write_model_report(folder: Path, report: dict) -> str:
    """``results.json`` and ``results.md`` in a model's folder; returns the markdown."""
    lines = [f"# VBench: {report['label']}", ""]
    official = report["official"]
    if official:
        lines += ["| Total | Quality | Semantic |", "|---|---|---|"]
        lines.append("| " + " | ".join(f"{100 * official[k]:.2f} %" for k in ("total", "quality", "semantic")) + " |")
    else:
        missing = ", ".join(report["missing_for_total"])
        lines.append(f"Total, Quality and Semantic need all 16 dimensions; missing: {missing}.")
    lines += ["", "| dimension | score |", "|---|---|"]
    lines += [f"| {name} | {score:.4f} |" for name, score in sorted(report["dimensions"].items())]
    lines += [f"| {name} | not run: {reason} |" for name, reason in sorted(report["not_run"].items())]
    manifest = report["manifest"]
    lines += ["", f"{manifest['videos']} videos of {manifest['num_prompts']} prompts, {manifest['steps']} steps."]
    markdown = "\n".join(lines) + "\n"
    (folder / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    (folder / "results.md").write_text(markdown)
    return markdown
