"""What the diffusers-transformer adapters share: the teacher settings a config gives
(``DiffusersTeacherConfig``), the loading of a pipeline folder's parts, the network wrapper's base and
the latent-video side of the teacher interface. Each family's adapter (hunyuan_video.py, wan.py,
cogvideox.py) adds its own ``from_pipeline``; ``pretrained.py`` picks the adapter of a folder."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from dcm_lightning.conditioning import TextCondition
from dcm_lightning.diffusion import teacher_sigmas
from dcm_lightning.errors import UserError
from dcm_lightning.teachers.base import Prediction, guided_prediction, trainable_copy

VAE_TIME, VAE_SPACE = 4, 8  # HunyuanVideo's and Wan's causal video VAEs: 4× in time, 8× in space


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
            default (its adapter's ``default_guidance``: HunyuanVideo 1.0 = no true CFG, Wan 5.0, CogVideoX 6.0).
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


def torch_dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise UserError(f"unknown teacher dtype {name!r}; use bfloat16, float16 or float32.")
    return dtype


@dataclass
class PipelineParts:
    """What every adapter's ``from_pipeline`` starts from: the frozen transformer, the scheduler's
    config, the latent video shape ``c f h w`` of the configured clip, the guidance scale (the
    config's, else the family's default), and — when the config loads them — the prompt encoder, the
    negative prompt's condition (CFG's unconditional branch) and the latent decoder (else None)."""

    transformer: nn.Module
    scheduler: dict
    latent_shape: tuple[int, int, int, int]
    guidance_scale: float
    encode: Callable[[Sequence[str]], TextCondition] | None
    negative: TextCondition | None
    decode: Callable[[Tensor], Tensor] | None


def load_pipeline_parts(
    adapter: type[LatentVideoTeacher], folder: Path, config: DiffusersTeacherConfig
) -> PipelineParts:
    """The transformer (``from_pretrained`` in the configured dtype), the scheduler config, and the
    text encoders and VAE only when the config asks: a run from a trajectory cache needs neither."""
    import diffusers

    dtype = torch_dtype(config.dtype)
    if config.text_encoders:
        missing = [part for part in adapter.text_parts if not (folder / part).is_dir()]
        if missing:
            raise UserError(f"{folder} is incomplete: text_encoders: true needs {', '.join(missing)}/.")
    if config.vae and not (folder / "vae" / "config.json").is_file():
        raise UserError(f"{folder} is incomplete: vae: true needs vae/config.json and its weights.")
    transformer_class = getattr(diffusers, adapter.transformer_class)
    transformer = transformer_class.from_pretrained(folder, subfolder="transformer", dtype=dtype)
    transformer.requires_grad_(False).eval()
    scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    pipeline = None
    if config.text_encoders or config.vae:
        skipped = {"transformer": None}
        skipped |= {} if config.text_encoders else dict.fromkeys(adapter.text_parts)
        skipped |= {} if config.vae else {"vae": None}
        pipeline = getattr(diffusers, adapter.pipeline_name).from_pretrained(folder, dtype=dtype, **skipped)
    encode = adapter.prompt_encoder(pipeline, adapter.max_text_tokens) if config.text_encoders else None
    return PipelineParts(
        transformer,
        scheduler,
        latent_video_shape(transformer.config.in_channels, config.num_frames, config.height, config.width),
        adapter.default_guidance if config.guidance_scale is None else config.guidance_scale,
        encode,
        encode([config.negative_prompt]) if encode is not None else None,
        adapter.latent_decoder(pipeline) if config.vae else None,
    )


def latent_video_shape(channels: int, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
    """``c f h w`` of the latent of a ``num_frames × height × width`` video: the causal video VAEs keep
    the first frame and compress the rest 4× in time, and 8× in space."""
    return (channels, (num_frames - 1) // VAE_TIME + 1, height // VAE_SPACE, width // VAE_SPACE)


class DiffusersNetwork(nn.Module):
    """Base of the wrappers that give a diffusers transformer this package's network call
    ``(x, timestep, text…, feature_blocks=()) → v [, features]``. Each wrapper names the transformer's
    blocks in order as ``blocks``: the FSDP2 and activation-checkpointing units, and the
    discriminator's feature layers."""

    def __init__(self, transformer: nn.Module) -> None:
        super().__init__()
        self.transformer = transformer

    @property
    def config(self):
        return self.transformer.config

    def enable_activation_checkpointing(self) -> None:
        """diffusers' per-block checkpointing (non-reentrant; block hooks fire again in backward)."""
        self.transformer.enable_gradient_checkpointing()

    @property
    def feature_dim(self) -> int:
        """Width of the block hidden states the discriminator reads."""
        return self.config.num_attention_heads * self.config.attention_head_dim


class LatentVideoTeacher(nn.Module):
    """Latent shapes, the flow-matching grid, the device, students, and prompt encoding and decoding
    through optional pipeline parts, for adapters that set ``network``, ``_latent_shape``, ``shift``
    and ``num_steps`` (and ``_encode`` / ``_decode`` when loaded with text encoders / VAE)."""

    network: nn.Module
    _latent_shape: tuple[int, int, int, int]
    shift: float
    num_steps: int
    _encode: Callable[[list[str]], TextCondition] | None = None
    _decode: Callable[[Tensor], Tensor] | None = None

    # What a family's adapter declares about its pipeline folder:
    pipeline_name: str  # model_index.json's _class_name, e.g. "WanPipeline"
    transformer_class: str  # the diffusers transformer class in transformer/
    text_parts: tuple[str, ...]  # the folder's text encoders and tokenizers
    default_guidance: float  # classifier-free guidance when the config gives none
    max_text_tokens: int  # the pipeline's max_sequence_length
    # prompt_encoder(pipeline, max_text_tokens) → prompts → TextCondition; latent_decoder(pipeline) →
    # latents → videos in [0, 1]; and ``from_pipeline(folder, config)`` built on ``load_pipeline_parts``.

    def encode_prompts(self, prompts: Sequence[str], open_vocabulary: bool = False) -> TextCondition:
        """The pipeline's text encoders' condition for ``prompts`` (any text: the vocabulary is open)."""
        if self._encode is None:
            raise UserError(
                f"this {type(self).__name__} was loaded without its text encoders; set `text_encoders: true` "
                "in its teacher settings, or train from cached embeddings."
            )
        return self._encode(list(prompts)).to(self.device)

    def decode(self, latents: Tensor) -> Tensor:
        """Videos (b c f h w in [0, 1]) of latents, decoded by the pipeline's VAE."""
        if self._decode is None:
            raise UserError(f"this {type(self).__name__} was loaded without its VAE; set `vae: true` to decode.")
        return self._decode(latents)

    def latent_shape(self) -> tuple[int, int, int, int]:
        return self._latent_shape

    def video_shape(self) -> tuple[int, int, int, int]:
        """``c f h w`` of the decoded video."""
        _, f, h, w = self._latent_shape
        return (3, (f - 1) * VAE_TIME + 1, h * VAE_SPACE, w * VAE_SPACE)

    def sigmas(self, num_steps: int | None = None) -> Tensor:
        """The sampler's N + 1 levels (or those of a ``num_steps`` sampler), descending to 0."""
        return teacher_sigmas(num_steps or self.num_steps, self.shift)

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def student_copy(self):
        """A trainable copy with classifier-free guidance distilled (one forward per step)."""
        return trainable_copy(self)


class NegativePromptTeacher(LatentVideoTeacher):
    """Classifier-free guidance against a negative prompt's condition ``negative`` (1 l d), the
    conditional and unconditional halves batched in one network call (Wan, CogVideoX)."""

    negative: TextCondition | None  # None: loaded without text encoders, so no CFG
    guidance_scale: float

    def predict(
        self,
        x: Tensor,
        sigma: Tensor,
        condition: TextCondition,
        guidance_scale: float | None = None,
        feature_blocks: Sequence[int] = (),
        **network_kwargs,
    ) -> Prediction:
        scale = self.guidance_scale if guidance_scale is None else guidance_scale
        if scale != 1.0 and self.negative is None:
            raise UserError(
                f"classifier-free guidance needs the negative prompt's embeddings; load this "
                f"{type(self).__name__} with `text_encoders: true`."
            )
        negative = None if scale == 1.0 else self.negative.to(x.device).expand(len(condition))
        return guided_prediction(
            self.network, self.parameterization, x, sigma, condition, negative, scale, feature_blocks, **network_kwargs
        )
