"""NonFiniteGuard on real `fit` runs: a NaN in a batch stops the run before the step is applied (one
sentence naming the step, the terms and the rank; nothing non-finite written) or, with ``skip``,
leaves that step's weights and optimizer state untouched; a checkpoint with a non-finite weight is
never written. SemE (automatic optimization) and DetE (manual, two optimizers)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from dcm_lightning.checkpoints import read_lightning_checkpoint
from dcm_lightning.cli import main
from tests.conftest import dete_config
from tests.modules.test_consistency_modules import distill_config, logged

GUARD = "dcm_lightning.callbacks.NonFiniteGuard"


def _with(config: Path, *callbacks: dict, every: int = 1) -> Path:
    values = yaml.safe_load(config.read_text())
    values["trainer"]["callbacks"][0]["init_args"]["every_n_train_steps"] = every
    values["trainer"]["callbacks"] += list(callbacks)
    config.write_text(yaml.safe_dump(values))
    return config


def _fault(name: str, step: int) -> dict:
    return {"class_path": f"tests.reliability.faults.{name}", "init_args": {"at_step": step}}


def _guard(action: str = "stop") -> dict:
    return {"class_path": GUARD, "init_args": {"action": action}}


def _all_finite(folder: Path) -> bool:
    return all(
        torch.isfinite(v).all()
        for path in folder.glob("*.ckpt")
        for v in read_lightning_checkpoint(path)["state_dict"].values()
        if v.is_floating_point()
    )


def _stopped(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]  # after the cache's progress bar


def test_a_nan_batch_stops_seme_before_the_step_naming_step_terms_and_rank(chained, tmp_path, capsys):
    root, _ = chained
    config = _with(distill_config(tmp_path, "seme", root / "teacher", 4), _guard(), _fault("PoisonBatch", 2))
    error = _stopped(["fit", "--config", str(config)], capsys)
    assert (
        error.startswith("error: step 2, rank 0: non-finite loss terms ")
        and "train/loss" in error
        and "(loss terms non-finite on ranks [0], a loss term or gradient on ranks [0])" in error
    )
    checkpoints = tmp_path / "seme" / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("epoch=*")) == ["epoch=0-step=1.ckpt", "epoch=0-step=2.ckpt"]
    assert _all_finite(checkpoints)


def test_skip_leaves_the_poisoned_steps_weights_and_moments_as_they_were(chained, tmp_path):
    root, _ = chained
    config = _with(distill_config(tmp_path, "seme", root / "teacher", 4), _guard("skip"), _fault("PoisonBatch", 2))
    main(["fit", "--config", str(config)])
    checkpoints = tmp_path / "seme" / "checkpoints"
    before, after = (read_lightning_checkpoint(checkpoints / f"epoch=0-step={s}.ckpt") for s in (2, 3))
    for key, value in before["state_dict"].items():
        torch.testing.assert_close(after["state_dict"][key], value, rtol=0, atol=0, msg=key)
    moments = before["optimizer_states"][0]["state"], after["optimizer_states"][0]["state"]
    assert all(torch.equal(moments[0][i]["exp_avg"], moments[1][i]["exp_avg"]) for i in moments[0])
    assert _all_finite(checkpoints) and (checkpoints / "epoch=0-step=4.ckpt").exists()
    skipped = logged(tmp_path / "seme", "train/skipped_steps")
    assert min(skipped) == 2 and set(skipped.values()) == {1.0}  # one step skipped, the one poisoned


def test_a_nan_batch_stops_the_detail_experts_generator_step(chained, tmp_path, capsys):
    root, semantic = chained
    config = _with(dete_config(tmp_path, "dete", semantic, 6), _guard(), _fault("PoisonBatch", 2), every=2)
    error = _stopped(["fit", "--config", str(config)], capsys)
    assert error.startswith("error: step 2, rank 0: non-finite loss terms ") and "train/loss" in error
    assert _all_finite(tmp_path / "dete" / "checkpoints")


def test_a_checkpoint_with_a_non_finite_weight_is_not_written(chained, tmp_path, capsys):
    root, _ = chained
    config = _with(distill_config(tmp_path, "seme", root / "teacher", 4), _guard(), _fault("PoisonWeights", 2))
    error = _stopped(["fit", "--config", str(config)], capsys)
    assert "step 2: weight student." in error and "the checkpoint was not written" in error
    checkpoints = tmp_path / "seme" / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("*.ckpt")) == ["epoch=0-step=1.ckpt"]
