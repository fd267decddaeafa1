"""The ``validate`` table: results.json (everything measured) and results.md (the table to read)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from dcm_lightning.evaluation.minibench import QUALITY_WEIGHTS, SEMANTIC_DIMENSIONS

SUMMARY_COLUMNS = (
    ("Total", lambda r: r["minibench"]["total"], "{:.4f}"),
    ("Quality", lambda r: r["minibench"]["quality"], "{:.4f}"),
    ("Semantic", lambda r: r["minibench"]["semantic"], "{:.4f}"),
    ("PSNR vs ref (dB)", lambda r: r["psnr"], "{:.2f}"),
    ("SSIM vs ref", lambda r: r["ssim"], "{:.4f}"),
    ("latency (s/video)", lambda r: r["seconds_per_video"], "{:.4f}"),
    ("speedup", lambda r: r["speedup"], "{:.1f}×"),
    ("NFE", lambda r: r["nfe_per_video"], "{:g}"),
    ("NFE-bound fraction", lambda r: r["nfe_bound_fraction"], "{:.2f}"),
)
DIMENSIONS = (*QUALITY_WEIGHTS, *SEMANTIC_DIMENSIONS)


def _cell(value, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def markdown(results: dict) -> str:
    reference, rows = results["reference"], results["rows"]
    suite = results["suite"]
    lines = [
        f"MiniBench on {suite['videos']} videos ({suite['num_prompts']} prompts × {suite['seeds_per_prompt']} seeds, "
        f"suite seed {suite['suite_seed']}); agreement, speedup and NFE bound against `{reference}`; "
        f"latency: median of single-video samples after warm-up on {results['machine']['device']} "
        f"({results['machine']['torch_threads']} threads).",
        "",
        "| model | " + " | ".join(name for name, _, _ in SUMMARY_COLUMNS) + " |",
        "|---" * (len(SUMMARY_COLUMNS) + 1) + "|",
    ]
    for label, row in rows.items():
        lines.append(f"| {label} | " + " | ".join(_cell(get(row), fmt) for _, get, fmt in SUMMARY_COLUMNS) + " |")
    lines += ["", "| model | " + " | ".join(DIMENSIONS) + " |", "|---" * (len(DIMENSIONS) + 1) + "|"]
    scored = {label: row["minibench"] for label, row in rows.items()}
    if "data" in results:
        scored["data (clean renders)"] = results["data"]["minibench"]
    for label, bench in scored.items():
        lines.append(f"| {label} | " + " | ".join(f"{bench[d]:.4f}" for d in DIMENSIONS) + " |")
    return "\n".join(lines) + "\n"


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def write_report(results: dict, out_dir: Path) -> str:
    """Write results.json and results.md into ``out_dir``; return the markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(_json_safe(results), indent=2) + "\n")
    text = markdown(results)
    (out_dir / "results.md").write_text(text)
    return text + f"\nwrote {out_dir / 'results.json'} and {out_dir / 'results.md'}"
