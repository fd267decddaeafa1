"""Trajectory caches of real (diffusers) teachers: prompts from a file, embeddings from the pipeline's
own text encoder, bf16 states at the kept grid indices, and HunyuanVideo's pooled vector."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open

from dcm_lightning.conditioning import TextCondition
from dcm_lightning.data.prompt_file import prompt_file_suite
from dcm_lightning.data.trajectory_datamodule import CachedPairs, TrajectoryDataModule
from dcm_lightning.errors import UserError
from dcm_lightning.sampling import denoiser, ode_trajectory, seeded_noise
from dcm_lightning.teachers.loading import load_teacher
from tests.tiny_diffusers import POOLED_DIM, TEXT_DIM, TEXT_TOKENS, teacher_settings, write_pipeline_folder

PROMPTS = "a red cat runs\n\nthe blue dog jumps in the snow\na dog in the snow\n"


def _data(tmp_path, **overrides) -> TrajectoryDataModule:
    (tmp_path / "prompts.txt").write_text(PROMPTS)
    settings = dict(
        cache_dir=str(tmp_path / "cache"),
        prompt_file=str(tmp_path / "prompts.txt"),
        num_trajectories=4,
        kept_indices=[9, 8, 5, 4, -1],
        cache_dtype="bfloat16",
        samples_per_shard=2,
        build_batch_size=2,
    )
    return TrajectoryDataModule(**{**settings, **overrides})


def test_a_wan_cache_holds_bf16_states_of_the_cfg_teacher_and_the_pipelines_embeddings(tmp_path):
    folder = write_pipeline_folder("wan", tmp_path / "wan", text_encoder=True)
    teacher = load_teacher(teacher_settings(folder, text_encoders=True))  # CFG 5 against ""
    consumer = SimpleNamespace(
        teacher=teacher, training_indices=lambda: [9, 5], needs_clean_sample=False, optimizer_steps_per_batch=1
    )
    cache = _data(tmp_path).prepare_cache(consumer)
    assert cache.is_complete() and cache.spec.guidance_scale == 5.0 and cache.spec.dtype == "bfloat16"
    with safe_open(cache.shard_path(0), framework="pt") as shard:
        assert shard.get_slice("states").get_dtype() == "BF16"
    cases = prompt_file_suite(tmp_path / "prompts.txt", 4, 7)
    assert [c.prompt for c in cases] == ["a red cat runs", "the blue dog jumps in the snow", "a dog in the snow"] + [
        "a red cat runs"
    ]
    # Sample 1 is the teacher's own 10-step trajectory from its seeded noise, kept at σ_9 … σ_4 and 0.
    condition = teacher.encode_prompts([cases[1].prompt])
    states = list(
        ode_trajectory(
            denoiser(teacher, condition),
            teacher.parameterization,
            seeded_noise([cases[1].seed], teacher.latent_shape()),
            teacher.sigmas(),
        )
    )
    read = cache.read_sample(1, [9, 5, -1])
    expected = torch.cat([states[0], states[4], states[-1]])
    # Within bf16 storage rounding (built in batches of 2 here, so the float sums differ slightly too).
    torch.testing.assert_close(read["states"], expected, rtol=1e-2, atol=1e-2)
    assert read["states"].to(torch.bfloat16).float().equal(read["states"])  # stored in bf16
    torch.testing.assert_close(read["text_embeds"], condition.embeds[0])
    assert read["text_mask"].sum() == 8  # 7 words and </s>
    assert "text_pooled" not in read


def test_a_hunyuan_cache_carries_the_pooled_prompt_vector_into_training_batches(tmp_path):
    folder = write_pipeline_folder("hunyuan_video", tmp_path / "hunyuan")
    teacher = load_teacher(teacher_settings(folder))

    def encode(prompts):  # stands in for Llama + CLIP, which the tiny folder lacks: a fixed draw per prompt
        generators = [torch.Generator().manual_seed(len(p)) for p in prompts]
        embeds = torch.stack([torch.randn(TEXT_TOKENS, TEXT_DIM, generator=g) for g in generators])
        pooled = torch.stack([torch.randn(POOLED_DIM, generator=g) for g in generators])
        return TextCondition(embeds, torch.ones(len(prompts), TEXT_TOKENS, dtype=torch.bool), pooled)

    teacher._encode = encode
    consumer = SimpleNamespace(
        teacher=teacher, training_indices=lambda: [9, 5], needs_clean_sample=False, optimizer_steps_per_batch=1
    )
    cache = _data(tmp_path, cache_dtype="float32").prepare_cache(consumer)
    pair = CachedPairs(cache, [9, 5], seed=0)[0]
    assert pair["text_pooled"].shape == (POOLED_DIM,)
    for sample, case in enumerate(prompt_file_suite(tmp_path / "prompts.txt", 4, 7)):
        torch.testing.assert_close(cache.read_sample(sample, [9])["text_pooled"], encode([case.prompt]).pooled[0])


def test_a_missing_or_empty_prompt_file_is_one_sentence(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        prompt_file_suite(tmp_path / "none.txt", 4, 0)
    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(UserError, match="holds no prompts"):
        prompt_file_suite(tmp_path / "empty.txt", 4, 0)


def test_a_cache_built_at_one_embedded_guidance_is_refused_by_a_config_with_another(tmp_path):
    folder = write_pipeline_folder("hunyuan_video", tmp_path / "hunyuan")

    def consumer(embedded_guidance: float) -> SimpleNamespace:
        teacher = load_teacher(teacher_settings(folder, embedded_guidance=embedded_guidance))
        teacher._encode = lambda prompts: TextCondition(  # stands in for Llama + CLIP (the tiny folder has none)
            torch.ones(len(prompts), TEXT_TOKENS, TEXT_DIM),
            torch.ones(len(prompts), TEXT_TOKENS, dtype=torch.bool),
            torch.ones(len(prompts), POOLED_DIM),
        )
        return SimpleNamespace(
            teacher=teacher, training_indices=lambda: [9, 5], needs_clean_sample=False, optimizer_steps_per_batch=1
        )

    cache = _data(tmp_path, num_trajectories=2, cache_dtype="float32").prepare_cache(consumer(6.0))
    assert cache.spec.embedded_guidance == 6.0 and cache.spec.negative_prompt is None  # HunyuanVideo: no CFG
    with pytest.raises(UserError, match="embedded_guidance is 6.0 in the cache but 4.0 was requested"):
        _data(tmp_path, num_trajectories=2, cache_dtype="float32").prepare_cache(consumer(4.0))


def test_a_cache_built_with_one_negative_prompt_is_refused_by_a_config_with_another(tmp_path):
    folder = write_pipeline_folder("wan", tmp_path / "wan", text_encoder=True)

    def consumer(negative_prompt: str) -> SimpleNamespace:
        teacher = load_teacher(teacher_settings(folder, text_encoders=True, negative_prompt=negative_prompt))
        return SimpleNamespace(
            teacher=teacher, training_indices=lambda: [9, 5], needs_clean_sample=False, optimizer_steps_per_batch=1
        )

    cache = _data(tmp_path, num_trajectories=2).prepare_cache(consumer(""))
    assert cache.spec.negative_prompt == "" and cache.spec.embedded_guidance is None
    with pytest.raises(UserError, match="negative_prompt is '' in the cache but 'a dog' was requested"):
        _data(tmp_path, num_trajectories=2).prepare_cache(consumer("a dog"))
