"""`export` of a real teacher's student writes a diffusers pipeline folder: loaded with diffusers'
``from_pretrained`` (dcm_lightning.pipelines imported), it samples what this package's sampler samples
from the same export, at each exported step count, for HunyuanVideo, Wan2.1 and CogVideoX students
trained on tiny random-weight complete pipeline folders (SemE 1 step, then DetE 1 batch)."""

from __future__ import annotations

import json
from pathlib import Path

import diffusers
import pytest
import torch
from safetensors.torch import load_file

import dcm_lightning.pipelines  # noqa: F401  (the exported schedulers: diffusers finds them once imported)
from dcm_lightning.cli import main
from dcm_lightning.conditioning import TextCondition
from dcm_lightning.generation import load_sampler
from tests.modules.test_real_teachers import distill
from tests.tiny_diffusers import (
    FAMILIES,
    LATENT,
    POOLED_DIM,
    TEXT_DIM,
    TEXT_TOKENS,
    VIDEO,
)

TEXT_PARTS = {
    "hunyuan_video": ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "vae"),
    "wan": ("text_encoder", "tokenizer", "vae"),
    "cogvideox": ("text_encoder", "tokenizer", "vae"),
}


def load_pipeline(export: Path, **kwargs):
    """What a diffusers user calls: DiffusionPipeline.from_pretrained. A Wan student is diffusers' own
    WanPipeline (its scheduler's module is imported above); a HunyuanVideo or CogVideoX student names
    its dcm_lightning.pipelines class through the folder's pipeline.py (trust_remote_code)."""
    return diffusers.DiffusionPipeline.from_pretrained(export, trust_remote_code=True, **kwargs)


@pytest.fixture(scope="module", params=FAMILIES)
def exported(request, tmp_path_factory) -> dict:
    """One family's student, trained as in test_real_teachers.py, exported three ways: the DCM student
    in float32 and in the default dtype (bfloat16), and its semantic expert alone (float32, teacher
    parts linked)."""
    family = request.param
    root = tmp_path_factory.mktemp(f"export_{family}")
    folder, semantic, detail = distill(root, family, full=True)
    main(["export", "--checkpoint", str(detail), "--out", str(root / "dcm"), "--dtype", "float32"])
    main(["export", "--checkpoint", str(detail), "--out", str(root / "dcm_bf16"), "--steps", "4"])
    main(
        ["export", "--checkpoint", str(semantic), "--out", str(root / "seme"), "--dtype", "float32"]
        + ["--link-teacher-parts"]
    )
    lora_only = ["--out", str(root / "lora_only"), "--dtype", "float32", "--no-merged-detail"]
    main(["export", "--checkpoint", str(detail), *lora_only])
    return {
        "family": family,
        "teacher": folder,
        "dcm": root / "dcm",
        "dcm_bf16": root / "dcm_bf16",
        "seme": root / "seme",
        "lora_only": root / "lora_only",
    }


def inputs(family: str) -> tuple[torch.Tensor, TextCondition]:
    """Noise (b c f h w) and a text condition with padded tokens, as a pipeline's text encoders give."""
    generator = torch.Generator().manual_seed(1)
    noise = torch.randn(2, *LATENT, generator=generator)
    mask = torch.ones(2, TEXT_TOKENS, dtype=torch.bool)
    mask[1, 5:] = False
    embeds = torch.randn(2, TEXT_TOKENS, TEXT_DIM, generator=generator)
    pooled = torch.randn(2, POOLED_DIM, generator=generator) if family == "hunyuan_video" else None
    return noise, TextCondition(embeds, mask, pooled)


def pipeline_latents(pipe, export: Path, family: str, noise: torch.Tensor, condition: TextCondition, steps: int):
    """The pipeline's own call on given latents and prompt embeddings, guidance off (distilled), latents
    out (b c f h w)."""
    config = json.loads((export / "config.json").read_text())
    common = dict(num_inference_steps=steps, output_type="latent", return_dict=False, **VIDEO)
    dtype = pipe.transformer.dtype
    if family == "hunyuan_video":  # HunyuanVideo's guidance_scale is its embedded guidance
        guidance = config["teacher"].get("embedded_guidance", 6.0)
        return pipe(
            latents=noise.to(dtype),
            prompt_embeds=condition.embeds.to(dtype),
            pooled_prompt_embeds=condition.pooled.to(dtype),
            prompt_attention_mask=condition.mask.to(dtype),
            guidance_scale=guidance,
            **common,
        )[0].float()
    if family == "wan":  # WanPipeline's text encoder zero-pads; WanNetwork zeroes by the mask
        embeds = condition.embeds * condition.mask.unsqueeze(-1)
        return pipe(latents=noise.to(dtype), prompt_embeds=embeds.to(dtype), guidance_scale=1.0, **common)[0].float()
    out = pipe(  # CogVideoX's latents are b f c h w
        latents=noise.permute(0, 2, 1, 3, 4).to(dtype),
        prompt_embeds=condition.embeds.to(dtype),
        guidance_scale=1.0,
        **common,
    )[0]
    return out.permute(0, 2, 1, 3, 4).float()


@pytest.fixture(scope="module")
def dcm_pipeline(exported):
    return load_pipeline(exported["dcm"], dtype=torch.float32)


def test_the_export_is_a_pipeline_folder_with_the_teachers_parts_and_plain_numbers(exported, dcm_pipeline):
    family, export = exported["family"], exported["dcm"]
    index = json.loads((export / "model_index.json").read_text())
    config = json.loads((export / "config.json").read_text())
    pipeline = config["pipeline"]
    assert pipeline["class_name"] == type(dcm_pipeline).__name__
    if family == "wan":  # diffusers' own class
        assert index["_class_name"] == "WanPipeline" and not (export / "pipeline.py").exists()
    else:  # the folder's pipeline.py imports it from dcm_lightning.pipelines, and nothing else
        assert index["_class_name"] == ["pipeline", pipeline["class_name"]]
        assert type(dcm_pipeline).__module__.startswith("dcm_lightning.pipelines.")
        assert (export / "pipeline.py").read_text().startswith("from dcm_lightning.pipelines.")
    assert {"transformer", "transformer_2", "scheduler", *TEXT_PARTS[family]} <= set(index)
    for part in TEXT_PARTS[family]:  # copied: the folder stands without the teacher's
        assert (export / part).is_dir() and not (export / part).is_symlink()
        assert getattr(dcm_pipeline, part) is not None
    assert not (export / "transformer_detail").exists()
    assert pipeline["steps"] == [4, 8]  # EXPORT_STEPS; the tiny configs' default is 4
    for steps in (4, 8):
        expected = load_sampler(export, steps).sigmas.tolist()
        assert pipeline["sigmas"][str(steps)] == expected and expected[-1] == 0.0
    # the detail expert owns σ_b itself; diffusers' switch sits between σ_κ and the grid level above it
    boundary_sigma, ratio = pipeline["boundary_sigma"], pipeline["boundary_ratio"]
    assert boundary_sigma in pipeline["sigmas"]["4"]
    above = min(s for s in pipeline["sigmas"]["8"] if s > boundary_sigma)  # κ + 1 (8 steps: 4 + 4 of 10)
    timestep = (lambda s: round(999 * s)) if family == "cogvideox" else (lambda s: 1000 * s)  # σ = t / 999 (VP)
    assert timestep(boundary_sigma) < ratio * 1000 < timestep(above)
    assert dcm_pipeline.config.boundary_ratio == ratio and dcm_pipeline.transformer_2 is not None


@pytest.mark.parametrize("steps", [4, 8])
def test_the_pipeline_samples_what_the_students_sampler_samples(exported, dcm_pipeline, steps):
    family, export = exported["family"], exported["dcm"]
    noise, condition = inputs(family)
    ours = load_sampler(export, steps).latents(noise, condition)
    theirs = pipeline_latents(dcm_pipeline, export, family, noise, condition, steps)
    difference = float((theirs - ours).abs().max())
    print(f"\n{family} DCM, {steps} steps: max |Δ| = {difference:.2e} (latents up to {float(ours.abs().max()):.2f})")
    assert difference < 1e-5


def test_a_bfloat16_export_loads_and_samples(exported):
    family, export = exported["family"], exported["dcm_bf16"]
    weights = load_file(export / "transformer_2" / "diffusion_pytorch_model.safetensors")
    assert {tensor.dtype for tensor in weights.values()} == {torch.bfloat16}
    pipe = load_pipeline(export, dtype=torch.bfloat16)
    noise, condition = inputs(family)
    latents = pipeline_latents(pipe, export, family, noise, condition, 4)
    assert latents.shape == noise.shape and bool(latents.isfinite().all())
    with pytest.raises(ValueError, match="for 4 steps, not 8"):
        pipeline_latents(pipe, export, family, noise, condition, 8)


def test_a_semantic_expert_alone_exports_a_single_transformer_pipeline(exported):
    family, export = exported["family"], exported["seme"]
    index = json.loads((export / "model_index.json").read_text())
    assert index["transformer_2"] == [None, None] and index["boundary_ratio"] is None
    assert not (export / "transformer_2").exists()
    for part in TEXT_PARTS[family]:  # --link-teacher-parts
        assert (export / part).resolve() == (exported["teacher"] / part).resolve() and (export / part).is_symlink()
    pipe = load_pipeline(export, dtype=torch.float32)
    assert pipe.transformer_2 is None
    noise, condition = inputs(family)
    ours = load_sampler(export, 4).latents(noise, condition)
    assert float((pipeline_latents(pipe, export, family, noise, condition, 4) - ours).abs().max()) < 1e-5


@pytest.mark.parametrize("steps", [4, 8])
def test_the_pipeline_switches_experts_where_the_sampler_does(exported, dcm_pipeline, steps):
    """Half the steps on each expert (docs/design.md §2 "Sampling"), σ_κ itself on the detail expert;
    and the experts differ well beyond what the sampling test allows, so it would see a wrong switch."""
    family, export = exported["family"], exported["dcm"]
    noise, condition = inputs(family)
    calls = []
    hooks = [
        getattr(dcm_pipeline, name).register_forward_pre_hook(lambda *_, name=name: calls.append(name))
        for name in ("transformer", "transformer_2")
    ]
    try:
        pipeline_latents(dcm_pipeline, export, family, noise, condition, steps)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == ["transformer"] * (steps // 2) + ["transformer_2"] * (steps - steps // 2)
    ratio = dcm_pipeline.config.boundary_ratio
    dcm_pipeline.register_to_config(boundary_ratio=None)  # every step on `transformer`
    try:
        semantic_only = pipeline_latents(dcm_pipeline, export, family, noise, condition, steps)
    finally:
        dcm_pipeline.register_to_config(boundary_ratio=ratio)
    difference = float((semantic_only - load_sampler(export, steps).latents(noise, condition)).abs().max())
    print(f"\n{family}, {steps} steps: the semantic expert alone against DCM: max |Δ| = {difference:.2e}")
    assert difference > 1e-4


def test_the_detail_expert_is_also_a_lora_file_and_psi_and_without_its_merged_copy_samples_the_same(exported):
    """`sample` rebuilds the detail expert from the LoRA + Ψ files (never from a merged copy), so the
    export written with --no-merged-detail (no transformer_2/, hence no model_index.json) samples as
    the full one; the full one's merged transformer_2/ samples the same through diffusers (above)."""
    full, lora_only = exported["dcm"], exported["lora_only"]
    for export in (full, lora_only):
        assert (export / "detail_lora" / "pytorch_lora_weights.safetensors").is_file()
        assert (export / "detail_psi.safetensors").is_file() and not (export / "model.safetensors").exists()
    assert not (lora_only / "transformer_2").exists() and not (lora_only / "model_index.json").exists()
    noise, condition = inputs(exported["family"])
    ours = load_sampler(full, 4).latents(noise, condition)
    assert float((load_sampler(lora_only, 4).latents(noise, condition) - ours).abs().max()) < 1e-6
