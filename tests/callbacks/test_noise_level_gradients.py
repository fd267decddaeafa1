"""NoiseLevelGradients: per-noise-level loss and gradient-norm tags in TensorBoard, and a run that is
bit-identical with and without the callback."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dcm_lightning.callbacks.noise_level_gradients import bucket_indices
from dcm_lightning.checkpoints import read_lightning_checkpoint
from dcm_lightning.cli import main
from tests.conftest import save_random_teacher
from tests.modules.test_consistency_modules import KAPPA, distill_config

PROBE = {
    "class_path": "dcm_lightning.callbacks.NoiseLevelGradients",
    "init_args": {"every_n_batches": 2, "num_buckets": 3, "probe_size": 2},
}


def test_buckets_spread_over_the_training_indices_high_noise_first():
    assert bucket_indices(range(10), 4) == [9, 6, 3, 0]
    assert bucket_indices([7, 8, 9], 8) == [9, 8, 7]


def _fit(tmp_path: Path, teacher: Path, name: str, probe: bool) -> Path:
    path = distill_config(tmp_path, name, teacher, 4)
    config = yaml.safe_load(path.read_text())
    root = tmp_path / name
    config["trainer"]["logger"] = {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": str(root), "name": "tb"},
    }
    if probe:
        config["trainer"]["callbacks"].append(PROBE)
    path.write_text(yaml.safe_dump(config))
    main(["fit", "--config", str(path)])
    return root


def test_probe_tags_reach_tensorboard_and_the_run_is_unchanged(tmp_path):
    teacher = save_random_teacher(tmp_path / "teacher")
    probed = _fit(tmp_path, teacher, "probed", probe=True)
    plain = _fit(tmp_path, teacher, "plain", probe=False)

    events = EventAccumulator(str(next((probed / "tb").glob("version_*"))), size_guidance={"images": 0}).Reload()
    scalars = events.Tags()["scalars"]
    indices = bucket_indices(range(KAPPA + 1, 10), 3)  # the 10-step test teacher's SemE trains on κ + 1 … 9
    for n in indices:
        for kind in ("loss", "grad_norm"):
            tag = f"noise_level/{kind}_n{n:02d}"
            assert tag in scalars, sorted(scalars)
            steps = [event.step for event in events.Scalars(tag)]
            assert steps == [0, 2, 4]  # at the start, then every 2 batches
            assert all(event.value > 0 for event in events.Scalars(tag))
    assert "noise_level/curves" in events.Tags()["images"]

    for name in ("epoch=0-step=2.ckpt", "epoch=0-step=4.ckpt"):
        a = read_lightning_checkpoint(probed / "checkpoints" / name)
        b = read_lightning_checkpoint(plain / "checkpoints" / name)
        assert a["state_dict"].keys() == b["state_dict"].keys()
        assert all(torch.equal(v, b["state_dict"][k]) for k, v in a["state_dict"].items())
        assert str(a["optimizer_states"]) == str(b["optimizer_states"])
