"""Shared fixtures: tiny random-weight models so tests run in seconds on a CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from dcm_lightning.cli import main
from dcm_lightning.lightning_cli import compose_documented
from dcm_lightning.moving_shapes import MovingShapesSpec, MovingShapesTextEncoder
from dcm_lightning.networks.tiny_dit import TinyVideoDiT, tiny_dit_config
from dcm_lightning.teachers.tiny import TinyTeacher

REPO = Path(__file__).resolve().parents[1]


def make_random_teacher(seed: int = 0, num_steps: int = 50) -> TinyTeacher:
    """A "test"-size TinyVideoDiT with random (not zero) output layers, so outputs depend on inputs."""
    torch.manual_seed(seed)
    network = TinyVideoDiT(tiny_dit_config("test"))
    with torch.no_grad():
        for parameter in network.parameters():
            if parameter.abs().sum() == 0:
                parameter.normal_(std=0.02)
    network.eval()
    return TinyTeacher(
        network, MovingShapesTextEncoder(), MovingShapesSpec(), shift=3.0, guidance_scale=4.0, num_steps=num_steps
    )


def save_random_teacher(folder: Path, seed: int = 0) -> Path:
    """A random teacher with a 10-step grid saved as a pretrained folder, for `fit` and `cache` runs."""
    make_random_teacher(seed, num_steps=10).save_pretrained(folder, dtype=torch.float32)
    return folder


@pytest.fixture
def random_tiny_teacher() -> TinyTeacher:
    return make_random_teacher()


@pytest.fixture
def random_teacher_folder(tmp_path) -> Path:
    return save_random_teacher(tmp_path / "teacher")


# ---- a SemE → DetE chain through the real CLI, built once (module and evaluation tests) ----


def dete_config(tmp_path: Path, name: str, semantic: Path, max_steps: int, **model) -> Path:
    from tests.modules.test_consistency_modules import distill_config

    config = yaml.safe_load(distill_config(tmp_path, name, tmp_path / "teacher", max_steps).read_text())
    dete = compose_documented(REPO / "configs" / "dete_tiny.yaml", REPO)["model"]
    dete["init_args"].update(semantic_checkpoint=str(semantic), **model)
    dete["init_args"]["detail"] = {
        **dete["init_args"].get("detail", {}),
        "lora_rank": 4,
        "lora_alpha": 8.0,
        **model.get("detail", {}),
    }
    config["model"] = dete
    del config["trainer"]["gradient_clip_val"]  # DetE clips each of its two steps itself
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def chained(tmp_path_factory):
    from tests.modules.test_consistency_modules import distill_config

    tmp_path = tmp_path_factory.mktemp("dete_runs")
    teacher = save_random_teacher(tmp_path / "teacher")
    main(["fit", "--config", str(distill_config(tmp_path, "seme", teacher, 2))])
    semantic = tmp_path / "seme" / "checkpoints" / "epoch=0-step=2.ckpt"
    main(["fit", "--config", str(dete_config(tmp_path, "dete", semantic, 4))])  # 2 batches: G + D steps each
    return tmp_path, semantic
