"""`make sweep-baselines`: the learning rate of the LCM and PCM baselines on the tiny tier, so that the
DCM-vs-baselines comparison (`make compare`) is against tuned baselines.

    python -m experiments.compare.run_sweep                         (seed 0, 4 rates × 2 baselines)
    python -m experiments.compare.run_sweep --lrs 2e-5 5e-5 --seeds 0 1 2

Each run is `configs/{lcm,pcm}_tiny.yaml` with only the learning rate (and the step count, seed and
paths) changed, trained for 2·S optimizer steps — the optimizer-step budget of DCM's two stages,
as in `make compare` — from the shared trajectory cache, and scored by one MiniBench `validate`
(64 held-out prompts × 2 noise seeds). The config's own rate reuses `make compare`'s runs
(`runs/ablation/seed*/{lcm,pcm}`). Writes experiments/compare/sweep/results.{json,md,png}.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from experiments.tiny_table import REPO, Stage, run_table, table_parser

HERE = Path(__file__).resolve().parent
BASELINES = {"LCM": ("lcm", "lcm_tiny"), "PCM": ("pcm", "pcm_tiny")}


def shipped_rate(config: str) -> float:
    """The learning rate ``configs/<config>.yaml`` ships with."""
    values = yaml.safe_load((REPO / "configs" / f"{config}.yaml").read_text())
    return float(values["model"]["init_args"]["learning_rate"])


def sweep(rates: list[float]) -> tuple[dict, dict]:
    """Stages and rows: one per baseline and rate; the shipped rate is the comparison's own stage."""
    stages, rows = {}, {}
    for label, (stage, config) in BASELINES.items():
        for rate in rates:
            name = stage if rate == shipped_rate(config) else f"{stage}_lr{rate:g}"
            stages[name] = Stage(config, {"learning_rate": rate}, None, 2)
            rows[f"{label}-4 lr {rate:g}"] = (name, 4)
    return stages, rows


if __name__ == "__main__":
    description = "LCM-4 and PCM-4 at several learning rates on the tiny tier."
    parser = table_parser(description, HERE / "sweep")
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-5, 2e-5, 5e-5, 1e-4])
    parser.set_defaults(seeds=[0])
    args = parser.parse_args()
    stages, rows = sweep(args.lrs)
    run_table("experiments.compare.run_sweep", description, stages, rows, {}, HERE / "sweep", args=args)
