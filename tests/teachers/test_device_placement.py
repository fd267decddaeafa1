"""Every tensor a real teacher holds follows ``.to(...)``: the transformer, the parameterization's table,
the negative prompt's condition and the pipeline's text encoders and VAE. On CPU the stand-ins for a
device change are the ``meta`` device (a real second device, without data) and a dtype change."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dcm_lightning.conditioning import TextCondition
from dcm_lightning.diffusion import VPrediction
from dcm_lightning.teachers.loading import load_teacher
from tests.tiny_diffusers import FAMILIES, teacher_settings, write_full_pipeline_folders


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return write_full_pipeline_folders(tmp_path_factory.mktemp("pipelines"))


def _teacher(folder, family):
    # CFG on for every family, so that each holds a negative prompt's condition
    return load_teacher(teacher_settings(folder, text_encoders=True, vae=True, guidance_scale=2.0))


def held_tensors(teacher: nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor reachable from the teacher: registered ones, the pipeline parts', and any plain
    attribute holding a tensor or a TextCondition (which would not move: the test reports it)."""
    tensors = dict(teacher.named_parameters()) | dict(teacher.named_buffers())
    for number, module in enumerate(teacher._pipeline_modules):
        tensors |= {f"pipeline{number}.{k}": v for k, v in module.state_dict(keep_vars=True).items()}
    owners = dict(teacher.named_modules())
    for owner_name, owner in list(owners.items()):  # plain objects a module holds (a parameterization …)
        owners |= {
            f"{owner_name}.{name}": value
            for name, value in vars(owner).items()
            if hasattr(value, "__dict__") and not isinstance(value, nn.Module | TextCondition | type)
        }
    for owner_name, owner in owners.items():
        for name, value in vars(owner).items():
            if isinstance(value, torch.Tensor):
                tensors[f"{owner_name}.{name} (plain attribute)"] = value
            elif isinstance(value, TextCondition):
                for part in ("embeds", "mask", "pooled"):
                    if getattr(value, part) is not None:
                        tensors[f"{owner_name}.{name}.{part} (plain attribute)"] = getattr(value, part)
    return tensors


@pytest.mark.parametrize("family", FAMILIES)
def test_every_tensor_of_a_teacher_follows_a_device_change(folders, family):
    teacher = _teacher(folders[family], family)
    assert teacher.negative is not None and len(teacher._pipeline_modules) >= 2  # text encoder(s) and VAE
    before = held_tensors(teacher)
    assert not [name for name in before if "plain attribute" in name]
    teacher.to("meta")
    after = held_tensors(teacher)
    assert after.keys() == before.keys()
    left = sorted(name for name, tensor in after.items() if tensor.device.type != "meta")
    assert not left, f"tensors that did not move: {left[:5]}"
    assert teacher.negative.embeds.device.type == "meta" and teacher.device.type == "meta"


@pytest.mark.parametrize("family", FAMILIES)
def test_every_floating_tensor_follows_a_dtype_change_and_the_vp_table_keeps_float64(folders, family):
    teacher = _teacher(folders[family], family)
    table = teacher.parameterization.alphas_cumprod.clone() if family == "cogvideox" else None
    teacher.to(torch.float64)
    floating = {k: v for k, v in held_tensors(teacher).items() if v.is_floating_point()}
    assert floating and all(v.dtype == torch.float64 for v in floating.values())
    if family == "cogvideox":
        assert isinstance(teacher.parameterization, VPrediction)
        teacher.to(torch.bfloat16)  # the ᾱ table must not be rounded to bf16
        assert torch.equal(teacher.parameterization.alphas_cumprod, table)


def test_a_students_copy_shares_the_pipeline_parts_but_not_the_buffer_table(folders):
    teacher = _teacher(folders["wan"], "wan")
    student = teacher.student_copy()
    assert student._pipeline_modules is teacher._pipeline_modules  # text encoders and VAE are not copied
    assert student._buffers is not teacher._buffers
    student.to(torch.float64)  # moving the student's buffers leaves the teacher's in place
    assert teacher.negative.embeds.dtype == torch.float32
