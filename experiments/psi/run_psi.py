"""`make psi-tiny`: which Ψ the LoRA detail expert needs — on the consistency loss alone (the
ablation's "+OD+PE" row) and in full DCM — on the tiny tier with several seeds, scored by MiniBench.

    python -m experiments.psi.run_psi                  (~30 min after the ablation)

Every row is a detail expert trained for S batches and sampled 2 + 2 at κ = 37; first from the
ablation's semantic expert without TC (runs/ablation/seed*/seme_notc), consistency loss only:
  +OD               a full-parameter second expert (the ablation's row, reused)
  +OD+PE, Ψ = all   LoRA + the tiny adapter's six Ψ modules (the ablation's row, reused)
  +OD+PE, Ψ = embedders    LoRA + copies of the timestep and pooled-text embedders only
  +OD+PE, no Ψ      LoRA adapters only
and, with TC and GAN + feature matching (from runs/ablation/seed*/seme_tc):
  DCM, Ψ = all      the ablation's DCM row (reused)
  DCM, Ψ = embedders       DCM with copies of the two embedders only
Writes experiments/psi/results.{json,md,png}.
"""

from __future__ import annotations

from pathlib import Path

from experiments.ablation_od_pe_tc.run_ablation import STAGES as ABLATION
from experiments.tiny_table import NO_GAN, Stage, run_table

HERE = Path(__file__).resolve().parent
EMBEDDERS = ["time_embedder", "pooled_text_embedder"]
STAGES = {
    **{name: ABLATION[name] for name in ("seme_notc", "dete_full", "dete_pe")},
    "dete_pe_psi_embedders": Stage("dete_tiny", {**NO_GAN, "detail": {"psi_modules": EMBEDDERS}}, "seme_notc", 2),
    "dete_pe_no_psi": Stage("dete_tiny", {**NO_GAN, "detail": {"psi_modules": []}}, "seme_notc", 2),
    "seme_tc": ABLATION["seme_tc"],
    "dcm": ABLATION["dcm"],
    "dcm_psi_embedders": Stage("dete_tiny", {"detail": {"psi_modules": EMBEDDERS}}, "seme_tc", 2),
}
ROWS = {
    "+OD": ("dete_full", 4),
    "+OD+PE, Ψ = all": ("dete_pe", 4),
    "+OD+PE, Ψ = embedders": ("dete_pe_psi_embedders", 4),
    "+OD+PE, no Ψ": ("dete_pe_no_psi", 4),
    "DCM, Ψ = all": ("dcm", 4),
    "DCM, Ψ = embedders": ("dcm_psi_embedders", 4),
}

if __name__ == "__main__":
    description = "Which Ψ the consistency-only LoRA detail expert needs, on the tiny tier."
    run_table("experiments.psi.run_psi", description, STAGES, ROWS, {}, HERE)
