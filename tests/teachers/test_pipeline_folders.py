"""The complete tiny pipeline folders (text encoders, tokenizers and VAE included) load and generate in
diffusers' own pipelines, and through this package's loader encode free text, decode latents and predict."""

from __future__ import annotations

import diffusers
import pytest
import torch

from dcm_lightning.conditioning import TextCondition
from dcm_lightning.teachers.loading import load_teacher
from tests.tiny_diffusers import (
    FAMILIES,
    LATENT,
    PIPELINES,
    POOLED_DIM,
    TEXT_DIM,
    TEXT_TOKENS,
    VIDEO,
    teacher_settings,
    write_full_pipeline_folders,
)

PROMPT = "a red cat runs in snow"
PARTS = {
    "hunyuan_video": {"text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "vae"},
    "wan": {"text_encoder", "tokenizer", "vae"},
    "cogvideox": {"text_encoder", "tokenizer", "vae"},
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return write_full_pipeline_folders(tmp_path_factory.mktemp("pipelines"))


@pytest.mark.parametrize("family", FAMILIES)
def test_diffusers_pipeline_loads_the_full_folder_and_generates_a_video(folders, family):
    pipeline = getattr(diffusers, PIPELINES[family]).from_pretrained(folders[family])
    present = {name for name, part in pipeline.components.items() if part is not None}
    assert present == PARTS[family] | {"transformer", "scheduler"}
    pipeline.set_progress_bar_config(disable=True)
    frames = pipeline(
        prompt=PROMPT,
        **VIDEO,
        num_inference_steps=2,
        guidance_scale=2.0,  # Wan, CogVideoX: CFG against the default negative prompt; HunyuanVideo: embedded
        max_sequence_length=TEXT_TOKENS,
        output_type="pt",
        generator=torch.Generator().manual_seed(0),
    ).frames
    assert frames.shape == (1, VIDEO["num_frames"], 3, VIDEO["height"], VIDEO["width"])  # b f c h w
    assert torch.isfinite(frames).all() and frames.min() >= 0 and frames.max() <= 1


@pytest.mark.parametrize("family", FAMILIES)
def test_loaded_teacher_encodes_free_text_decodes_and_predicts(folders, family):
    teacher = load_teacher(teacher_settings(folders[family], text_encoders=True, vae=True))
    condition = teacher.encode_prompts([PROMPT, "an unknown zebra word"])  # unknown words: the unk token
    assert condition.embeds.shape[0] == 2 and condition.embeds.shape[2] == TEXT_DIM
    if family == "cogvideox":  # the length the transformer's max_text_seq_length fixes (real ones: 226)
        assert condition.embeds.shape[1] == TEXT_TOKENS
    assert condition.mask.shape == condition.embeds.shape[:2] and condition.mask.dtype == torch.bool
    assert torch.isfinite(condition.embeds).all()
    if family == "hunyuan_video":
        assert condition.pooled.shape == (2, POOLED_DIM)
        # the pipeline's crop_start (95) cuts exactly the prompt template: 6 words and <|eot_id|> remain
        assert condition.mask[0].sum() == 7

    video = teacher.decode(torch.randn(1, *LATENT, generator=torch.Generator().manual_seed(0)))
    assert video.shape == (1, 3, VIDEO["num_frames"], VIDEO["height"], VIDEO["width"])
    assert video.min() >= 0 and video.max() <= 1

    first = TextCondition(
        condition.embeds[:1], condition.mask[:1], None if condition.pooled is None else condition.pooled[:1]
    )
    x = torch.randn(1, *LATENT, generator=torch.Generator().manual_seed(1))
    prediction = teacher.predict(x, torch.tensor([0.5]), first)  # the family's default guidance
    assert prediction.x0.shape == prediction.eps.shape == x.shape
    assert torch.isfinite(prediction.x0).all() and torch.isfinite(prediction.eps).all()
