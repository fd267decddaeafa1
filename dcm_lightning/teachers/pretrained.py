"""Real teachers from local diffusers pipeline folders (``model_index.json``, ``transformer/``,
``scheduler/``, and optionally the text encoders and the VAE).

``DiffusersTeacherConfig`` is what a distillation config says under ``teacher:``; ``load_diffusers_teacher``
reads the folder's pipeline class (HunyuanVideoPipeline, WanPipeline, CogVideoXPipeline), loads the
transformer with ``from_pretrained`` and wraps it in its adapter. Text encoders and the VAE load only
when asked: a training run from a trajectory cache needs neither. Prompts are encoded and latents
decoded by the pipeline's own ``encode_prompt`` and VAE code, so the embeddings are the pipeline's.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import Tensor

from dcm_lightning.data.moving_shapes.text import TextCondition
from dcm_lightning.errors import UserError
from dcm_lightning.teachers.diffusers_base import VAE_SPACE, VAE_TIME

FAMILIES = {
    "HunyuanVideoPipeline": (
        "HunyuanVideoTransformer3DModel",
        ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2"),
    ),
    "WanPipeline": ("WanTransformer3DModel", ("text_encoder", "tokenizer")),
    "CogVideoXPipeline": ("CogVideoXTransformer3DModel", ("text_encoder", "tokenizer")),
}
DEFAULT_GUIDANCE = {"HunyuanVideoPipeline": 1.0, "WanPipeline": 5.0, "CogVideoXPipeline": 6.0}
MAX_TEXT_TOKENS = {"HunyuanVideoPipeline": 256, "WanPipeline": 512, "CogVideoXPipeline": 226}


@dataclass
class DiffusersTeacherConfig:
    """A diffusers pipeline folder and the sampler the teacher is distilled with.

    Args:
        path: the local pipeline folder (``model_index.json`` at its top).
        num_frames, height, width: the video the teacher generates (the latent is 4× smaller in time
            after the first frame, 8× in space).
        num_steps: N, the teacher's ODE steps.
        shift: the flow grid's time shift; None takes the pipeline scheduler's own (CogVideoX: unused,
            its grid is the DDIM scheduler's trailing timesteps).
        guidance_scale: classifier-free guidance against ``negative_prompt``; None is the family's
            default (HunyuanVideo 1.0 = no true CFG, Wan 5.0, CogVideoX 6.0).
        embedded_guidance: HunyuanVideo's guidance input (official 6.0).
        negative_prompt: the unconditional branch's prompt (encoded once at load; needs text encoders).
        dtype: the teacher's weight dtype.
        text_encoders: load the text encoders (building a cache from prompts, CFG's negative prompt).
        vae: load the VAE (decoding samples).
    """

    path: str
    num_frames: int
    height: int
    width: int
    num_steps: int = 50
    shift: float | None = None
    guidance_scale: float | None = None
    embedded_guidance: float = 6.0
    negative_prompt: str = ""
    dtype: str = "bfloat16"
    text_encoders: bool = False
    vae: bool = False

    @classmethod
    def from_dict(cls, values: dict) -> DiffusersTeacherConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise UserError(f"unknown teacher settings {unknown}; the settings are {sorted(names)}.")
        return cls(**values)


def pipeline_class(folder: Path) -> str:
    """The pipeline class a folder declares, after checking the folder has what every teacher needs."""
    if not folder.is_dir():
        raise UserError(f"teacher folder {str(folder)!r} does not exist.")
    index = folder / "model_index.json"
    if not index.is_file():
        raise UserError(f"{folder} is not a diffusers pipeline folder (it has no model_index.json).")
    name = json.loads(index.read_text()).get("_class_name")
    if name not in FAMILIES:
        raise UserError(f"{folder} holds a {name}; the supported teachers are {', '.join(FAMILIES)}.")
    if not (folder / "transformer" / "config.json").is_file():
        raise UserError(f"{folder} is incomplete: transformer/config.json is missing.")
    if not any((folder / "transformer").glob("*.safetensors")) and not any((folder / "transformer").glob("*.bin")):
        raise UserError(f"{folder} is incomplete: transformer/ has no weight files (*.safetensors).")
    if not (folder / "scheduler" / "scheduler_config.json").is_file():
        raise UserError(f"{folder} is incomplete: scheduler/scheduler_config.json is missing.")
    return name


def _torch_dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise UserError(f"unknown teacher dtype {name!r}; use bfloat16, float16 or float32.")
    return dtype


def load_diffusers_teacher(config: DiffusersTeacherConfig | dict):
    """The adapter (HunyuanVideoTeacher, WanTeacher or CogVideoXTeacher) of a pipeline folder."""
    import diffusers

    if isinstance(config, dict):
        config = DiffusersTeacherConfig.from_dict(config)
    folder = Path(config.path)
    name = pipeline_class(folder)
    transformer_class, text_parts = FAMILIES[name]
    dtype = _torch_dtype(config.dtype)
    if config.text_encoders:
        missing = [part for part in text_parts if not (folder / part).is_dir()]
        if missing:
            raise UserError(f"{folder} is incomplete: text_encoders: true needs {', '.join(missing)}/.")
    if config.vae and not (folder / "vae" / "config.json").is_file():
        raise UserError(f"{folder} is incomplete: vae: true needs vae/config.json and its weights.")
    transformer = getattr(diffusers, transformer_class).from_pretrained(folder, subfolder="transformer", dtype=dtype)
    transformer.requires_grad_(False).eval()
    scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    pipeline = None
    if config.text_encoders or config.vae:
        skipped = {"transformer": None}
        skipped |= {} if config.text_encoders else dict.fromkeys(text_parts)
        skipped |= {} if config.vae else {"vae": None}
        pipeline = getattr(diffusers, name).from_pretrained(folder, dtype=dtype, **skipped)
    latent_shape = (
        transformer.config.in_channels,
        (config.num_frames - 1) // VAE_TIME + 1,
        config.height // VAE_SPACE,
        config.width // VAE_SPACE,
    )
    guidance = DEFAULT_GUIDANCE[name] if config.guidance_scale is None else config.guidance_scale
    encode = _prompt_encoder(name, pipeline) if config.text_encoders else None
    negative = encode([config.negative_prompt]) if encode is not None else None
    decode = _latent_decoder(name, pipeline) if config.vae else None
    if name == "HunyuanVideoPipeline":
        from dcm_lightning.teachers.hunyuan_video import HunyuanVideoNetwork, HunyuanVideoTeacher

        return HunyuanVideoTeacher(
            HunyuanVideoNetwork(transformer),
            latent_shape,
            shift=scheduler.get("shift", 1.0) if config.shift is None else config.shift,
            num_steps=config.num_steps,
            embedded_guidance=config.embedded_guidance,
            guidance_scale=guidance,
            negative=negative,
            encode=encode,
            decode_latents=decode,
        )
    if name == "WanPipeline":
        from dcm_lightning.teachers.wan import WanNetwork, WanTeacher

        return WanTeacher(
            WanNetwork(transformer),
            negative,
            latent_shape,
            shift=scheduler.get("flow_shift", 1.0) if config.shift is None else config.shift,
            guidance_scale=guidance,
            num_steps=config.num_steps,
            encode=encode,
            decode_latents=decode,
        )
    from diffusers import CogVideoXDDIMScheduler, CogVideoXPipeline

    from dcm_lightning.teachers.cogvideox import CogVideoXNetwork, CogVideoXTeacher

    rotary = None
    if transformer.config.use_rotary_positional_embeddings:  # CogVideoX-5b: the pipeline's own RoPE
        holder = SimpleNamespace(vae_scale_factor_spatial=VAE_SPACE, transformer=transformer)
        rotary = CogVideoXPipeline._prepare_rotary_positional_embeddings(
            holder, config.height, config.width, latent_shape[1], torch.device("cpu")
        )
    alphas = CogVideoXDDIMScheduler.from_pretrained(folder, subfolder="scheduler").alphas_cumprod
    return CogVideoXTeacher(
        CogVideoXNetwork(transformer, rotary),
        alphas,
        negative,
        latent_shape,
        guidance_scale=guidance,
        num_steps=config.num_steps,
        encode=encode,
        decode_latents=decode,
    )


def _prompt_encoder(name: str, pipeline):
    """prompts → TextCondition through the pipeline's own ``encode_prompt`` (on the pipeline's device)."""
    max_tokens = MAX_TEXT_TOKENS[name]

    @torch.no_grad()
    def encode(prompts: Sequence[str]) -> TextCondition:
        prompts = list(prompts)
        if name == "HunyuanVideoPipeline":
            embeds, pooled, mask = pipeline.encode_prompt(prompt=prompts, max_sequence_length=max_tokens)
            return TextCondition(embeds, mask.bool(), pooled)
        embeds, _ = pipeline.encode_prompt(
            prompt=prompts, do_classifier_free_guidance=False, max_sequence_length=max_tokens
        )
        if name == "WanPipeline":  # zero-padded past each prompt's tokens
            return TextCondition(embeds, embeds.abs().amax(dim=-1) > 0)
        return TextCondition(embeds, torch.ones(embeds.shape[:2], dtype=torch.bool, device=embeds.device))

    return encode


def _latent_decoder(name: str, pipeline):
    """latents (b c f h w) → videos (b c f h w in [0, 1]) as the pipeline decodes them."""
    vae = pipeline.vae

    @torch.no_grad()
    def decode(latents: Tensor) -> Tensor:
        latents = latents.to(vae.device, vae.dtype)
        if name == "HunyuanVideoPipeline":
            video = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
        elif name == "WanPipeline":
            shape = (1, vae.config.z_dim, 1, 1, 1)
            mean = torch.tensor(vae.config.latents_mean).view(shape).to(latents)
            std = torch.tensor(vae.config.latents_std).view(shape).to(latents)
            video = vae.decode(latents * std + mean, return_dict=False)[0]
        else:
            video = pipeline.decode_latents(latents.permute(0, 2, 1, 3, 4))
        return (video.float() / 2 + 0.5).clamp(0, 1)

    return decode
