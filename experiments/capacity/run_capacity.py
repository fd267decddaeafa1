"""`analyze capacity` on the six real configs, and the memory model beside the one step measured on a
GPU (experiments/gpu/wan_1.3b_h100.json: a Wan2.1-1.3B SemE step on one H100, the bf16 teacher and
the fp32 student with AdamW in memory, activation checkpointing, 32,760 tokens).

    python -m experiments.capacity.run_capacity     (seconds; writes experiments/capacity/)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dcm_lightning.analysis.capacity import architecture, per_gpu, tokens

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CONFIGS = [f"configs/{stage}_{family}.yaml" for family in ("hunyuan", "wan", "cogvideox") for stage in ("seme", "dete")]


def calibration() -> dict:
    measured = json.loads((REPO / "experiments" / "gpu" / "wan_1.3b_h100.json").read_text())[0]
    arch = architecture("pretrained/Wan2.1-T2V-1.3B-Diffusers")
    shape = measured["video_shape"]
    sequence = tokens(arch, shape["frames"], shape["height"], shape["width"])
    modeled = per_gpu(arch, sequence, "seme", ranks=1)
    total = sum(modeled.values())
    return {
        "case": "Wan2.1-1.3B SemE step, one GPU, batch 1, activation checkpointing (experiments/gpu/wan_seme_step.py)",
        "tokens_modeled": sequence,
        "tokens_measured": measured["tokens"],
        "parameters_modeled": arch.parameters,
        "parameters_measured": measured["parameters"],
        "modeled_gib": {k: round(v, 2) for k, v in modeled.items()},
        "modeled_total_gib": round(total, 2),
        "measured_peak_gib": measured["peak_memory_gib"],
        "measured_on": measured["device"],
        "modeled_over_measured": round(total / measured["peak_memory_gib"], 3),
    }


def main() -> None:
    command = [sys.executable, "-m", "dcm_lightning", "analyze", "capacity", "--out", str(HERE)]
    for config in CONFIGS:
        command += ["--config", config]
    subprocess.run(command, cwd=REPO, check=True)
    record = calibration()
    (HERE / "calibration.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
