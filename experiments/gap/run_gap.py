"""Where the rest of DCM-4's gap to the 50-step teacher lies on the tiny tier (issue 16): each hypothesis
is one change to DCM's pipeline, trained with several seeds and scored by MiniBench next to the default.

    python -m experiments.gap.run_gap                                   (every hypothesis, seeds 0 1 2)
    python -m experiments.gap.run_gap --hypotheses capacity fm_weight --seeds 0

Hypotheses (each row's stages; the default DCM row is the ablation's, runs/ablation/seed*/dcm):
  length      4× longer: the semantic expert 4·S steps, the detail expert 4·S batches
  kappa       κ = 29 (experiments/kappa: lower κ scored higher before the fidelity fixes)
  capacity    the detail expert's LoRA at r = 64, α = 128 (default r = 16)
  fm_weight   λ_fm = 1.0 (Wan's official 0.1·10; default 0.1)
  real_target the official "real" for the discriminator, the consistency target (default: the teacher's
              trajectory end)
  detail_lr   the detail expert's learning rate 5e-5 (default 1e-5)
Writes experiments/gap/results.{json,md,png}.
"""

from __future__ import annotations

from pathlib import Path

from experiments.tiny_table import DCM_STAGES, Stage, run_table, table_parser

HERE = Path(__file__).resolve().parent
HYPOTHESES: dict[str, dict[str, Stage]] = {  # hypothesis → its stages (the last one is scored)
    "length": {
        "seme_tc_x4": Stage("seme_tiny", {}, None, 4),
        "dcm_x4": Stage("dete_tiny", {}, "seme_tc_x4", 8),
    },
    "kappa": {
        "seme_tc_k29": Stage("seme_tiny", {"boundary_index": 29}, None, 1),
        "dcm_k29": Stage("dete_tiny", {}, "seme_tc_k29", 2),
    },
    "capacity": {"dcm_r64": Stage("dete_tiny", {"detail": {"lora_rank": 64, "lora_alpha": 128.0}}, "seme_tc", 2)},
    "fm_weight": {"dcm_fm1": Stage("dete_tiny", {"adversarial": {"feature_matching_weight": 1.0}}, "seme_tc", 2)},
    "real_target": {"dcm_real_target": Stage("dete_tiny", {"adversarial": {"real_source": "target"}}, "seme_tc", 2)},
    "detail_lr": {"dcm_lr5e-5": Stage("dete_tiny", {"learning_rate": 5e-5}, "seme_tc", 2)},
}


def stages_and_rows(hypotheses: list[str]) -> tuple[dict, dict]:
    """DCM's default stages plus each hypothesis's, and a DCM-4 row for the default and each."""
    stages, rows = dict(DCM_STAGES), {"DCM-4 (default)": ("dcm", 4)}
    for name in hypotheses:
        stages.update(HYPOTHESES[name])
        rows[f"DCM-4 {name}"] = (list(HYPOTHESES[name])[-1], 4)
    return stages, rows


if __name__ == "__main__":
    description = "DCM-4's gap to teacher-50 on the tiny tier: one change per row."
    parser = table_parser(description, HERE)
    parser.add_argument("--hypotheses", nargs="+", choices=sorted(HYPOTHESES), default=list(HYPOTHESES))
    args = parser.parse_args()
    stages, rows = stages_and_rows(args.hypotheses)
    run_table("experiments.gap.run_gap", description, stages, rows, {}, HERE, args=args)
