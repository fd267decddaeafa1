"""The observation DCM starts from, on the tiny tier: loss and gradient norm of one consistency model
(VCM: the whole trajectory, configs/vcm_tiny.yaml) differ between high- and low-noise samples.

    python -m experiments.noise_levels.run_noise_levels            (~3 min on 2 CPU cores)

Runs `python -m dcm_lightning fit --config configs/vcm_tiny.yaml` for 200 steps with its
NoiseLevelGradients callback (8 grid indices over the whole trajectory, 8 probe samples each, every
50 batches), then reads the per-index scalars back from the TensorBoard event files into
experiments/noise_levels/noise_levels.json and prints them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dcm_lightning.lightning_cli import compose_documented

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RUN = REPO / "runs" / "noise_levels_vcm"
STEPS = 200


def main() -> None:
    values = compose_documented(REPO / "configs" / "vcm_tiny.yaml", REPO)
    values["trainer"].update(
        max_steps=STEPS,
        default_root_dir=str(RUN),
        limit_val_batches=0,
        logger={"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": {"save_dir": str(RUN)}},
    )
    values["trainer"]["callbacks"] = [c for c in values["trainer"]["callbacks"] if "NoiseLevel" in c["class_path"]]
    RUN.mkdir(parents=True, exist_ok=True)
    config = RUN / "config.yaml"
    config.write_text(yaml.safe_dump(values, sort_keys=False))
    subprocess.run([sys.executable, "-m", "dcm_lightning", "fit", "--config", str(config)], cwd=REPO, check=True)
    events = EventAccumulator(str(sorted(RUN.glob("lightning_logs/version_*"))[-1])).Reload()
    table: dict[str, dict[str, dict[int, float]]] = {}
    for tag in events.Tags()["scalars"]:
        if tag.startswith("noise_level/"):
            kind, index = tag.removeprefix("noise_level/").rsplit("_n", 1)
            table.setdefault(index, {}).setdefault(kind, {}).update({e.step: e.value for e in events.Scalars(tag)})
    record = {"command": "python -m experiments.noise_levels.run_noise_levels", "steps": STEPS, "indices": table}
    (HERE / "noise_levels.json").write_text(json.dumps(record, indent=1) + "\n")
    steps = sorted(next(iter(table.values()))["loss"])
    print("grid index | " + " | ".join(f"loss@{s}" for s in steps) + " | " + " | ".join(f"grad@{s}" for s in steps))
    for index in sorted(table, key=int, reverse=True):
        row = table[index]
        losses = " | ".join(f"{row['loss'][s]:.4g}" for s in steps)
        grads = " | ".join(f"{row['grad_norm'][s]:.4g}" for s in steps)
        print(f"{index} | {losses} | {grads}")


if __name__ == "__main__":
    main()
