"""The whole tiny pipeline, timed: shipped teacher → trajectory cache → SemE → DetE → 4-step DCM samples.

    python -m experiments.demo.run_demo            (what `make demo` runs)

Each stage is the command a user would type (``cache``, ``fit``), run as a subprocess so its progress
bars show; a stage whose run folder already holds ``last.ckpt`` resumes from it (and finishes at once
when that run is complete), so an interrupted demo picks up where it stopped. At the end the shipped
teacher (50 steps) and the DCM student (2 + 2 steps) sample the same prompt suite from the same noise;
they are scored with MiniBench (``run_minibench``, the code of ``validate … --config configs/eval_tiny.yaml``)
into ``experiments/demo/results.{json,md}``, and each stage's wall time with the headline scores goes to
``experiments/demo/summary.json``. Delete ``runs/cache/tiny_teacher``, ``runs/seme_tiny`` and
``runs/dete_tiny`` first to time the pipeline from nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from dcm_lightning.evaluation import EvaluatedModel, run_minibench

ROOT = Path(__file__).resolve().parents[2]
TINY = ("--config", "configs/presets/tiny_cpu.yaml")  # the tiny tier's machine preset (configs/README.md)
SEME_CKPT = "runs/seme_tiny/checkpoints/last.ckpt"
DETE_CKPT = "runs/dete_tiny/checkpoints/last.ckpt"


def fit_command(config: str, last_ckpt: str) -> list[str]:
    command = [sys.executable, "-m", "dcm_lightning", "fit", *TINY, "--config", f"configs/{config}.yaml"]
    return command + (["--ckpt_path", last_ckpt] if (ROOT / last_ckpt).exists() else [])


def run_stage(name: str, command: list[str], resumed: bool) -> dict:
    print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    seconds = time.perf_counter() - start
    print(f"=== {name}: {seconds:.0f} s", flush=True)
    return {"stage": name, "command": " ".join(["python", *command[1:]]), "resumed": resumed, "seconds": round(seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-prompts", type=int, default=32, help="prompts in the comparison suite (default 32)")
    parser.add_argument("--seeds-per-prompt", type=int, default=2, help="noise seeds per prompt (default 2)")
    parser.add_argument("--out", default="experiments/demo/summary.json", help="summary JSON to write")
    args = parser.parse_args()

    start = time.perf_counter()
    stages = [
        run_stage(
            "trajectory cache",
            [sys.executable, "-m", "dcm_lightning", "cache", *TINY, "--config", "configs/seme_tiny.yaml"],
            resumed=(ROOT / "runs/cache/tiny_teacher").exists(),
        ),
        run_stage("semantic expert", fit_command("seme_tiny", SEME_CKPT), resumed=(ROOT / SEME_CKPT).exists()),
        run_stage("detail expert", fit_command("dete_tiny", DETE_CKPT), resumed=(ROOT / DETE_CKPT).exists()),
    ]
    print("\n=== MiniBench: teacher-50 and DCM-4 on the held-out suite", flush=True)
    sampling_start = time.perf_counter()
    models = [EvaluatedModel("teacher-50", None, 50), EvaluatedModel("dcm-4", str(ROOT / DETE_CKPT), 4)]
    results = run_minibench(
        models, ROOT / "experiments/demo", num_prompts=args.num_prompts, seeds_per_prompt=args.seeds_per_prompt
    )
    stages.append({"stage": "MiniBench", "seconds": round(time.perf_counter() - sampling_start)})
    total = time.perf_counter() - start

    summary = {
        "pipeline": "shipped tiny teacher -> trajectory cache -> SemE -> DetE -> 4-step DCM",
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform()},
        "stages": stages,
        "total_seconds": round(total),
        "suite": {"num_prompts": args.num_prompts, "seeds_per_prompt": args.seeds_per_prompt, "suite_seed": 1000},
        "minibench": {
            label: {
                **{k: round(row["minibench"][k], 4) for k in ("total", "quality", "semantic")},
                "seconds_per_video": round(row["seconds_per_video"], 4),
            }
            for label, row in results["rows"].items()
        },
        "speedup_dcm4_vs_teacher50": round(results["rows"]["dcm-4"]["speedup"], 1),
        "results": "experiments/demo/results.md (every dimension; results.json has everything measured)",
    }
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    for stage in stages:
        print(f"{stage['stage']:>18}: {stage['seconds']:>5} s" + (" (resumed)" if stage.get("resumed") else ""))
    print(f"{'total':>18}: {total:5.0f} s   (DCM-4 samples {summary['speedup_dcm4_vs_teacher50']}x faster)")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
