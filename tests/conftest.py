"""Shared fixtures: tiny random-weight models so tests run in seconds on a CPU."""

from __future__ import annotations

import pytest
import torch

from dcm_lightning.data.moving_shapes import MovingShapesSpec, MovingShapesTextEncoder
from dcm_lightning.networks.tiny_dit import TinyVideoDiT, tiny_dit_config
from dcm_lightning.teachers.tiny import TinyTeacher


@pytest.fixture
def random_tiny_teacher() -> TinyTeacher:
    """A "test"-size TinyVideoDiT with random (not zero) output layers, so outputs depend on inputs."""
    torch.manual_seed(0)
    network = TinyVideoDiT(tiny_dit_config("test"))
    with torch.no_grad():
        for parameter in network.parameters():
            if parameter.abs().sum() == 0:
                parameter.normal_(std=0.02)
    network.eval()
    return TinyTeacher(network, MovingShapesTextEncoder(), MovingShapesSpec(), shift=3.0, guidance_scale=4.0)
