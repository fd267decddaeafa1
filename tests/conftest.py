"""Shared fixtures: tiny random-weight models so tests run in seconds on a CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dcm_lightning.data.moving_shapes import MovingShapesSpec, MovingShapesTextEncoder
from dcm_lightning.networks.tiny_dit import TinyVideoDiT, tiny_dit_config
from dcm_lightning.teachers.tiny import TinyTeacher


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
