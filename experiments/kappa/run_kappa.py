"""`make kappa-tiny`: DCM trained at the κ that `analyze boundary` suggests for the tiny teacher
against the default κ = 37 — and, so that "suggested beats default" is not just "lower is better",
one κ beyond each of them — with several seeds, scored by MiniBench.

    python -m experiments.kappa.run_kappa                      (κ 29 33 37 41; ~60 min after the ablation)
    python -m experiments.kappa.run_kappa --kappas 33 37       (suggested and default only, ~25 min)

The suggested κ is read from experiments/boundary/boundary.json (`make boundary-tiny` writes it).
Every κ runs DCM's pipeline (experiments/tiny_table.py: the semantic expert with TC for S steps, then
the LoRA + Ψ detail expert with GAN + feature matching for S batches); only the semantic stage's
`boundary_index` differs — the detail expert and the sampler read κ from the semantic checkpoint.
The κ = 37 runs are the ablation's "DCM" row (runs/ablation/seed*/dcm), reused when that ran with
the same S and seeds. Writes experiments/kappa/results.{json,md,png}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from experiments.tiny_table import DCM_STAGES, REPO, Stage, run_table, table_parser

HERE = Path(__file__).resolve().parent
DEFAULT_KAPPA = yaml.safe_load((REPO / "configs" / "seme_tiny.yaml").read_text())["model"]["init_args"][
    "boundary_index"
]
SPACING = 4  # grid steps between the bracketing κ and the nearer of suggested / default


def suggested_kappa(path: Path = REPO / "experiments" / "boundary" / "boundary.json") -> int:
    if not path.exists():
        sys.exit(f"error: {path.relative_to(REPO)} does not exist; run `make boundary-tiny` first.")
    return int(json.loads(path.read_text())["suggested_kappa"])


def stages_and_rows(kappas: list[int], suggested: int) -> tuple[dict, dict]:
    """DCM's two stages per κ (the default's are the shared DCM_STAGES) and DCM-4 / DCM-8 rows."""
    stages, names = dict(DCM_STAGES), {}
    for kappa in kappas:
        if kappa == DEFAULT_KAPPA:
            names[kappa] = "dcm"
            continue
        semantic = f"seme_tc_k{kappa}"
        stages[semantic] = Stage("seme_tiny", {"boundary_index": kappa}, None, 1)
        stages[f"dcm_k{kappa}"] = Stage("dete_tiny", {}, semantic, 2)
        names[kappa] = f"dcm_k{kappa}"
    notes = {DEFAULT_KAPPA: " (default)", suggested: " (suggested)"}
    rows = {
        f"DCM-{steps} κ={kappa}{notes.get(kappa, '')}": (names[kappa], steps)
        for steps in (4, 8)
        for kappa in sorted(kappas, reverse=True)
    }
    return stages, rows


if __name__ == "__main__":
    suggested = suggested_kappa()
    low, high = min(suggested, DEFAULT_KAPPA), max(suggested, DEFAULT_KAPPA)
    parser = table_parser("DCM at the suggested κ against the default κ on the tiny tier.", HERE)
    parser.add_argument(
        "--kappas",
        type=int,
        nargs="+",
        default=sorted({low - SPACING, suggested, DEFAULT_KAPPA, high + SPACING}),
        help=f"the κ to train (default: the suggested {suggested}, the default {DEFAULT_KAPPA}, and {SPACING} "
        "grid steps beyond each)",
    )
    args = parser.parse_args()
    stages, rows = stages_and_rows(args.kappas, suggested)
    run_table("experiments.kappa.run_kappa", "", stages, rows, {}, HERE, args=args)
