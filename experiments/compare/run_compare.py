"""`make compare`: the paper's main table on the tiny tier — teacher-50, LCM-4, PCM-4, DCM-4, DCM-8 —
from the one shared trajectory cache, each student with several seeds, scored by MiniBench.

    python -m experiments.compare.run_compare                        (~30 min after the ablation, ~50 from nothing)
    python -m experiments.compare.run_compare --steps 500 --seeds 0 1 2 3 4

LCM (one phase) and PCM (4 phases) are single models over the whole trajectory trained for 2·S steps;
DCM is the semantic expert (S steps, TC) plus the LoRA + Ψ detail expert with GAN + feature matching
(S batches) — the same compute — sampled with 2 + 2 (DCM-4) and 4 + 4 (DCM-8) steps. The DCM runs
live in the same folders as `make ablation-od-pe-tc`'s "DCM" row and are reused when that ran with
the same S and seeds. Stages resume and are skipped once done, as in experiments/tiny_table.py.
Writes experiments/compare/results.{json,md} and results.png, next to the paper's numbers.
"""

from __future__ import annotations

from pathlib import Path

from experiments.tiny_table import DCM_STAGES, Stage, run_table

HERE = Path(__file__).resolve().parent
STAGES = {"lcm": Stage("lcm_tiny", {}, None, 2), "pcm": Stage("pcm_tiny", {}, None, 2), **DCM_STAGES}
ROWS = {"LCM-4": ("lcm", 4), "PCM-4": ("pcm", 4), "DCM-4": ("dcm", 4), "DCM-8": ("dcm", 8)}
PAPER = {  # VBench Total / Quality / Semantic (HunyuanVideo, the paper's main table)
    "teacher-50": (83.87, 85.00, 79.34),
    "LCM-4": (80.33, 80.83, 78.32),
    "PCM-4": (80.93, 81.94, 76.90),
    "DCM-4": (83.83, 85.12, 78.67),
    "DCM-8": (83.86, 85.00, 79.32),
}

if __name__ == "__main__":
    description = "teacher-50 vs LCM-4, PCM-4, DCM-4, DCM-8 on the tiny tier."
    run_table("experiments.compare.run_compare", description, STAGES, ROWS, PAPER, HERE, latency=True)
