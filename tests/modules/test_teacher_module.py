"""TeacherModule through the real CLI on a "test"-size network: training, exact resume, export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from dcm_lightning.cli import main
from dcm_lightning.lightning_cli import compose_documented
from dcm_lightning.teachers.tiny import TinyTeacher

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, name: str, max_steps: int) -> Path:
    config = compose_documented(REPO / "configs" / "teacher_tiny.yaml", REPO)
    root = tmp_path / name
    config["trainer"].update(
        max_steps=max_steps, default_root_dir=str(root), limit_val_batches=0, enable_progress_bar=False
    )
    config["trainer"]["logger"]["init_args"]["save_dir"] = str(root)
    config["trainer"]["callbacks"] = [
        {
            "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {"dirpath": str(root / "checkpoints"), "every_n_train_steps": 2, "save_top_k": -1},
        }
    ]
    config["model"]["init_args"].update(size="test", warmup_steps=2)
    config["data"]["init_args"].update(batch_size=4, num_train_clips=64)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def straight_and_resumed(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("teacher_runs")
    main(["fit", "--config", str(_config(tmp_path, "straight", 4))])
    main(["fit", "--config", str(_config(tmp_path, "interrupted", 2))])
    resumed = tmp_path / "interrupted" / "checkpoints" / "epoch=0-step=2.ckpt"
    main(["fit", "--config", str(_config(tmp_path, "interrupted", 4)), "--ckpt_path", str(resumed)])
    return tmp_path


def test_a_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one(straight_and_resumed):
    straight = _weights(next((straight_and_resumed / "straight" / "checkpoints").glob("*step=4.ckpt")))
    resumed = _weights(next((straight_and_resumed / "interrupted" / "checkpoints").glob("*step=4.ckpt")))
    assert straight.keys() == resumed.keys()
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0, msg=key)
    # Training moved the weights: the comparison above is not between two untouched inits.
    start = _weights(straight_and_resumed / "interrupted" / "checkpoints" / "epoch=0-step=2.ckpt")
    assert not torch.equal(start["network.proj_out.weight"], straight["network.proj_out.weight"])


def test_export_writes_a_folder_that_sample_loads(straight_and_resumed, tmp_path):
    checkpoint = next((straight_and_resumed / "straight" / "checkpoints").glob("*step=4.ckpt"))
    main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "teacher"), "--dtype", "float32"])
    teacher = TinyTeacher.from_pretrained(tmp_path / "teacher")
    ema = {k.removeprefix("ema.average."): v for k, v in _weights(checkpoint).items() if k.startswith("ema.average.")}
    for key, value in teacher.network.state_dict().items():
        torch.testing.assert_close(value, ema[key], rtol=0, atol=0)
    main(
        [
            "sample",
            "--checkpoint",
            str(tmp_path / "teacher"),
            "--prompt",
            "a plain red circle moving up",
            "--steps",
            "2",
            "--out",
            str(tmp_path / "samples"),
        ]
    )
    assert (tmp_path / "samples" / "a_plain_red_circle_moving_up-0.mp4").stat().st_size > 0
    assert (tmp_path / "samples" / "grid.png").is_file()


def test_a_checkpoint_of_another_architecture_is_refused_in_one_sentence(straight_and_resumed, tmp_path):
    from dcm_lightning.errors import UserError
    from dcm_lightning.teachers.loading import load_teacher

    checkpoint = torch.load(
        next((straight_and_resumed / "straight" / "checkpoints").glob("*step=4.ckpt")), weights_only=True
    )
    checkpoint["state_dict"].pop("ema.average.context_embedder.weight")  # the exported EMA teacher
    torch.save(checkpoint, tmp_path / "old.ckpt")
    with pytest.raises(UserError, match="another architecture"):
        load_teacher(tmp_path / "old.ckpt")


def test_a_second_stage_starts_from_the_first_stages_weights_and_trains_on_its_own_sigmas(
    straight_and_resumed, tmp_path, monkeypatch
):
    from dcm_lightning.errors import UserError
    from dcm_lightning.modules import teacher as teacher_module
    from dcm_lightning.modules.teacher import TeacherModule

    checkpoint = next((straight_and_resumed / "straight" / "checkpoints").glob("*step=4.ckpt"))
    stage2 = TeacherModule(size="test", init_from=str(checkpoint), train_shift=1.0)
    for key, value in stage2.state_dict().items():
        torch.testing.assert_close(value, _weights(checkpoint)[key], rtol=0, atol=0, msg=key)
    shifts = []
    monkeypatch.setattr(teacher_module, "shifted_sigma", lambda t, shift: shifts.append(shift) or t)
    batch = {"video": torch.zeros(2, 3, 8, 32, 32), "prompt": ["a plain red circle moving up"] * 2}
    stage2.training_step(batch, 0)
    TeacherModule(size="test").training_step(batch, 0)
    assert shifts == [1.0, 3.0], "train_shift replaces the sampler's shift in training only"
    with pytest.raises(UserError, match="not a checkpoint of a TeacherModule with this architecture"):
        TeacherModule(size="cpu", init_from=str(checkpoint))
