"""`make ablation-od-pe-tc`: the paper's ablation (VCM → +OD → +OD+PE → +OD+PE+TC → DCM) on the tiny
tier, every row from the one shared trajectory cache, each with several seeds, scored by MiniBench.

    python -m experiments.ablation_od_pe_tc.run_ablation                    (~75 min on 2 CPU cores)
    python -m experiments.ablation_od_pe_tc.run_ablation --steps 1000 --seeds 0 1 2 3 4   (longer runs)

Rows (docs/design.md §2 "Ablation rows"), all sampled with DCM's 2 + 2 schedule at κ = 37:
  VCM        one full-parameter student over the whole trajectory with DCM's two phases (2·S steps)
  +OD        SemE (no TC, S steps) + a full-parameter detail expert, consistency only (S batches)
  +OD+PE     SemE (no TC) + the LoRA + Ψ detail expert, consistency only
  +OD+PE+TC  SemE with TC + the LoRA + Ψ detail expert, consistency only
  DCM        SemE with TC + the LoRA + Ψ detail expert with GAN + feature matching (configs/dete_tiny.yaml)
Every stage is the user's own `python -m dcm_lightning fit` on a config written from the shipped
ones (configs/{vcm,seme,dete,dete_full}_tiny.yaml) with only the step count, seed and paths changed;
a stage whose final checkpoint exists is skipped and an interrupted one resumes from last.ckpt, so
rerunning the command continues. Then one `validate` scores every student and the 50-step teacher
on 64 held-out prompts × 2 noise seeds, and the rows are aggregated (mean ± sample std over seeds)
into experiments/ablation_od_pe_tc/results.{json,md} and results.png, next to the paper's numbers.
"""

from __future__ import annotations

from pathlib import Path

from experiments.tiny_table import DCM_STAGES, NO_GAN, Stage, run_table

HERE = Path(__file__).resolve().parent
STAGES = {
    "vcm": Stage("vcm_tiny", {}, None, 2),
    "seme_notc": Stage("seme_tiny", {"tc_weight": 0.0}, None, 1),
    "seme_tc": DCM_STAGES["seme_tc"],
    "dete_full": Stage("dete_full_tiny", NO_GAN, "seme_notc", 2),  # DetE: a G and a D step per batch
    "dete_pe": Stage("dete_tiny", NO_GAN, "seme_notc", 2),
    "dete_pe_tc": Stage("dete_tiny", NO_GAN, "seme_tc", 2),
    "dcm": DCM_STAGES["dcm"],
}
ROWS = {  # label: the stage whose student is scored, with 4 sampling steps
    "VCM": ("vcm", 4),
    "+OD": ("dete_full", 4),
    "+OD+PE": ("dete_pe", 4),
    "+OD+PE+TC": ("dete_pe_tc", 4),
    "DCM": ("dcm", 4),
}
PAPER = {  # VBench Total / Quality / Semantic (HunyuanVideo, the paper's ablation table)
    "VCM": (80.30, 80.74, 78.36),
    "+OD": (83.08, 84.20, 78.59),
    "+OD+PE": (83.03, 84.16, 78.53),
    "+OD+PE+TC": (83.42, 84.63, None),
    "DCM": (83.83, 85.12, 78.67),
}

if __name__ == "__main__":
    script = "experiments.ablation_od_pe_tc.run_ablation"
    run_table(script, "The OD / PE / TC ablation on the tiny tier.", STAGES, ROWS, PAPER, HERE)
