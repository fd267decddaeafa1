"""A short training probe: N batches of a detail expert (or an LCM/PCM baseline) from the shared tiny
cache, then the 4-step oracle accuracies on 16 held-out prompts. Used to pick the tiny tier's
learning rates (experiments/dete/README.md); nothing is saved but a CSV log.

    python -m experiments.dete.short_probe dete --batches 100 --set learning_rate=1e-5
    python -m experiments.dete.short_probe dete --batches 100 \
        --set adversarial.weight=0 adversarial.feature_matching_weight=0
    python -m experiments.dete.short_probe lcm --batches 250 --set learning_rate=1e-5

Needs `make seme-tiny` (the semantic checkpoint and the cache) first.
"""

from __future__ import annotations

import argparse
import json
import time

import lightning as L
import yaml

from dcm_lightning.data.trajectory_datamodule import TrajectoryDataModule
from dcm_lightning.evaluation.oracle_accuracy import oracle_accuracy
from dcm_lightning.lightning_cli import compose_documented
from dcm_lightning.modules import DetEModule, PhasedConsistencyModule
from dcm_lightning.moving_shapes.datasets import prompt_suite

CONFIGS = {"dete": "configs/dete_tiny.yaml", "lcm": "configs/lcm_tiny.yaml", "pcm": "configs/pcm_tiny.yaml"}


def _value(text: str):
    """A --set value as YAML reads it, with "1e-5" a number too (YAML 1.1 wants "1.0e-5")."""
    value = yaml.safe_load(text)
    try:
        return float(value) if isinstance(value, str) else value
    except ValueError:
        return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(CONFIGS))
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="model settings over the config's")
    args = parser.parse_args()
    settings = compose_documented(CONFIGS[args.kind])["model"]["init_args"]
    for key, value in (item.split("=", 1) for item in args.set):  # dotted keys reach a group: adversarial.weight
        *groups, name = key.split(".")
        target = settings
        for group in groups:
            target = target.setdefault(group, {})
        target[name] = _value(value)
    L.seed_everything(0)
    module = (DetEModule if args.kind == "dete" else PhasedConsistencyModule)(**settings)
    steps = args.batches * getattr(module, "optimizer_steps_per_batch", 1)
    trainer = L.Trainer(
        max_steps=steps,
        logger=L.pytorch.loggers.CSVLogger("runs/probes", name=args.kind),
        enable_checkpointing=False,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=10,
        gradient_clip_val=None if args.kind == "dete" else 1.0,
    )
    data = TrajectoryDataModule(cache_dir="runs/cache/tiny_teacher", num_trajectories=256, batch_size=16)
    start = time.perf_counter()
    trainer.fit(module, datamodule=data)
    module.eval()
    cases = prompt_suite(16, 1, 1000)
    videos = module.sample([c.prompt for c in cases], [c.seed for c in cases], steps=4)
    report = oracle_accuracy(videos, [c.attributes for c in cases], module.student.spec)
    result = {
        "kind": args.kind,
        "batches": args.batches,
        "set": args.set,
        **{k: round(v, 4) for k, v in report.items()},
    }
    result["seconds"] = round(time.perf_counter() - start)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
