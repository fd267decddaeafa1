"""Real teachers loaded from local diffusers pipeline folders (tiny random-weight ones)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from dcm_lightning.conditioning import TextCondition
from dcm_lightning.diffusion import teacher_sigmas
from dcm_lightning.errors import UserError
from dcm_lightning.teachers.cogvideox import CogVideoXTeacher, trailing_sigmas
from dcm_lightning.teachers.hunyuan_video import HunyuanVideoTeacher
from dcm_lightning.teachers.loading import load_teacher
from dcm_lightning.teachers.wan import WanTeacher
from tests.tiny_diffusers import (
    FAMILIES,
    LATENT,
    POOLED_DIM,
    TEXT_DIM,
    TEXT_TOKENS,
    teacher_settings,
    tiny_transformer,
    write_pipeline_folder,
)

ADAPTERS = {"hunyuan_video": HunyuanVideoTeacher, "wan": WanTeacher, "cogvideox": CogVideoXTeacher}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipelines")
    return {family: write_pipeline_folder(family, root / family) for family in FAMILIES}


def _text(batch: int, pooled: bool) -> TextCondition:
    generator = torch.Generator().manual_seed(1)
    embeds = torch.randn(batch, TEXT_TOKENS, TEXT_DIM, generator=generator)
    extra = torch.randn(batch, POOLED_DIM, generator=generator) if pooled else None
    return TextCondition(embeds, torch.ones(batch, TEXT_TOKENS, dtype=torch.bool), extra)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_pipeline_folder_loads_into_its_adapter_with_the_schedulers_grid(folders, family):
    teacher = load_teacher(teacher_settings(folders[family], guidance_scale=1.0))
    assert type(teacher) is ADAPTERS[family]
    assert teacher.latent_shape() == LATENT and teacher.video_shape() == (3, 17, 64, 64)
    expected = {
        "hunyuan_video": teacher_sigmas(10, 7.0),  # FlowMatchEulerDiscreteScheduler's shift
        "wan": teacher_sigmas(10, 3.0),  # UniPC's flow_shift
        "cogvideox": trailing_sigmas(10),
    }[family]
    torch.testing.assert_close(teacher.sigmas(), expected)
    loaded, saved = teacher.network.transformer.state_dict(), tiny_transformer(family).state_dict()
    assert loaded.keys() == saved.keys() and all(torch.equal(loaded[k], v) for k, v in saved.items())
    x = torch.randn(1, *LATENT, generator=torch.Generator().manual_seed(2))
    prediction = teacher.predict(x, torch.tensor([0.7]), _text(1, pooled=family == "hunyuan_video"))
    assert prediction.x0.shape == x.shape and bool(prediction.x0.isfinite().all())


def test_a_bf16_teachers_student_keeps_float32_master_weights(folders):
    teacher = load_teacher(teacher_settings(folders["wan"], dtype="bfloat16"))
    assert torch.bfloat16 in {p.dtype for p in teacher.network.parameters()}  # (diffusers keeps a few in fp32)
    assert {p.dtype for p in teacher.student_copy().network.parameters()} == {torch.float32}


def test_the_shift_in_the_config_overrides_the_schedulers(folders):
    teacher = load_teacher(teacher_settings(folders["hunyuan_video"], shift=17.0))
    torch.testing.assert_close(teacher.sigmas(), teacher_sigmas(10, 17.0))


def test_a_guided_teacher_without_text_encoders_refuses_cfg_but_runs_unguided(folders):
    teacher = load_teacher(teacher_settings(folders["wan"]))  # Wan's default CFG 5
    assert teacher.guidance_scale == 5.0
    x = torch.randn(1, *LATENT)
    with pytest.raises(UserError, match="text_encoders: true"):
        teacher.predict(x, torch.tensor([0.5]), _text(1, False))
    teacher.predict(x, torch.tensor([0.5]), _text(1, False), guidance_scale=1.0)
    with pytest.raises(UserError, match="without its text encoders"):
        teacher.encode_prompts(["a cat"])
    with pytest.raises(UserError, match="without its VAE"):
        teacher.decode(torch.zeros(1, *LATENT))


def test_wan_prompts_are_encoded_by_the_pipelines_own_text_encoder(tmp_path):
    folder = write_pipeline_folder("wan", tmp_path / "wan", text_encoder=True)
    teacher = load_teacher(teacher_settings(folder, text_encoders=True))
    condition = teacher.encode_prompts(["a red cat runs", "the dog jumps in the snow"])
    assert condition.embeds.shape == (2, 512, TEXT_DIM)
    # UMT5 tokens plus </s>: 5 and 7; the rest is zero padding and masked out.
    assert condition.mask.sum(dim=1).tolist() == [5, 7]
    assert float(condition.embeds[0, 5:].abs().max()) == 0.0
    assert teacher.negative.embeds.shape == (1, 512, TEXT_DIM)  # "" → CFG's unconditional branch
    x = torch.randn(2, *LATENT)
    teacher.predict(x, torch.tensor([0.5, 0.5]), condition)  # CFG against the negative prompt


def test_bad_folders_are_refused_with_one_sentence(folders, tmp_path):
    def refused(settings_or_path, match):
        with pytest.raises(UserError, match=match) as error:
            load_teacher(settings_or_path)
        assert "\n" not in str(error.value)

    refused(teacher_settings(tmp_path / "nowhere"), "does not exist")
    (tmp_path / "empty").mkdir()
    refused(teacher_settings(tmp_path / "empty"), "no model_index.json")
    broken = shutil.copytree(folders["wan"], tmp_path / "broken")
    for weights in (broken / "transformer").glob("*.safetensors"):
        weights.unlink()
    refused(teacher_settings(broken), "transformer/ has no weight files")
    refused(teacher_settings(folders["wan"], text_encoders=True), "needs text_encoder, tokenizer/")
    refused(teacher_settings(folders["wan"], vae=True), "vae: true needs vae/config.json")
    refused(teacher_settings(folders["wan"], colour="red"), "unknown teacher settings")
    refused(str(folders["wan"]), "give it as `teacher: {path:")
    foreign = shutil.copytree(folders["wan"], tmp_path / "foreign")
    (foreign / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    refused(teacher_settings(foreign), "holds a StableDiffusionPipeline")
