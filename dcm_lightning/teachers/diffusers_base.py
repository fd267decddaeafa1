"""What the diffusers-transformer adapters share: the teacher settings a config gives
(``DiffusersTeacherConfig``), the loading of a pipeline folder's parts, the network wrapper's base and
the latent-video side of the teacher interface. Each family's adapter (hunyuan_video.py, wan.py,
cogvideox.py) adds its own ``from_pipeline``; ``pretrained.py`` picks the adapter of a folder."""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from dcm_lightning.conditioning import TextCondition
from dcm_lightning.context_parallel import ContextGroup, apply_plan, diffusers_attention_config, gather, plan_under
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
        transformer: a folder holding the transformer to load instead of the pipeline's own
            ``transformer/`` (an exported student's semantic expert); None: the pipeline's.
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
    transformer: str | None = None

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
class PipelineCodec:
    """A pipeline folder's text encoders and VAE, as functions: prompts → TextCondition (``encode``),
    videos (b c f h w in [0, 1]) → latents (``encode_videos``) and back (``decode``); None where the
    part was not loaded. ``modules`` are the torch modules behind them."""

    encode: Callable[[Sequence[str]], TextCondition] | None = None
    encode_videos: Callable[[Tensor], Tensor] | None = None
    decode: Callable[[Tensor], Tensor] | None = None
    modules: tuple[nn.Module, ...] = ()

    def to(self, device: torch.device | str) -> PipelineCodec:
        for module in self.modules:
            module.to(device)
        return self


def load_pipeline_codec(
    adapter: type[LatentVideoTeacher], folder: Path, dtype: str, text_encoders: bool, vae: bool
) -> PipelineCodec:
    """The text encoders and/or the VAE of a pipeline folder (never its transformer), in ``dtype``."""
    import diffusers

    if text_encoders:
        missing = [part for part in adapter.text_parts if not (folder / part).is_dir()]
        if missing:
            raise UserError(f"{folder} is incomplete: text_encoders: true needs {', '.join(missing)}/.")
    if vae and not (folder / "vae" / "config.json").is_file():
        raise UserError(f"{folder} is incomplete: vae: true needs vae/config.json and its weights.")
    if not (text_encoders or vae):
        return PipelineCodec()
    skipped = {"transformer": None}
    skipped |= {} if text_encoders else dict.fromkeys(adapter.text_parts)
    skipped |= {} if vae else {"vae": None}
    pipeline = getattr(diffusers, adapter.pipeline_name).from_pretrained(folder, dtype=torch_dtype(dtype), **skipped)
    # A transformer that fixes its text length (CogVideoX: max_text_seq_length) says it; else the family's.
    transformer = json.loads((folder / "transformer" / "config.json").read_text())
    max_tokens = transformer.get("max_text_seq_length") or adapter.max_text_tokens
    return PipelineCodec(
        adapter.prompt_encoder(pipeline, max_tokens) if text_encoders else None,
        adapter.latent_encoder(pipeline) if vae else None,
        adapter.latent_decoder(pipeline) if vae else None,
        tuple(m for m in pipeline.components.values() if isinstance(m, nn.Module)),
    )


@dataclass
class PipelineParts:
    """What every adapter's ``from_pipeline`` starts from: the frozen transformer, the scheduler's
    config, the latent video shape ``c f h w`` of the configured clip, the guidance scale (the
    config's, else the family's default), the text encoders and VAE the config loads (``codec``) and
    the negative prompt's condition (CFG's unconditional branch; None without text encoders)."""

    transformer: nn.Module
    scheduler: dict
    latent_shape: tuple[int, int, int, int]
    guidance_scale: float
    codec: PipelineCodec
    negative: TextCondition | None


def load_pipeline_parts(
    adapter: type[LatentVideoTeacher], folder: Path, config: DiffusersTeacherConfig
) -> PipelineParts:
    """The transformer (``from_pretrained`` in the configured dtype), the scheduler config, and the
    text encoders and VAE only when the config asks: a run from a trajectory cache needs neither."""
    import diffusers

    codec = load_pipeline_codec(adapter, folder, config.dtype, config.text_encoders, config.vae)
    transformer_class = getattr(diffusers, adapter.transformer_class)
    source = {"pretrained_model_name_or_path": folder, "subfolder": "transformer"}
    if config.transformer is not None:
        source = {"pretrained_model_name_or_path": Path(config.transformer)}
    transformer = transformer_class.from_pretrained(**source, dtype=torch_dtype(config.dtype))
    transformer.requires_grad_(False).eval()
    return PipelineParts(
        transformer,
        json.loads((folder / "scheduler" / "scheduler_config.json").read_text()),
        latent_video_shape(transformer.config.in_channels, config.num_frames, config.height, config.width),
        adapter.default_guidance if config.guidance_scale is None else config.guidance_scale,
        codec,
        codec.encode([config.negative_prompt]) if codec.encode is not None else None,
    )


def scaled_latent_encoder(pipeline) -> Callable[[Tensor], Tensor]:
    """videos (b c f h w in [0, 1]) → latents (b c f h w): the mean of the VAE posterior × the VAE's
    scaling factor, as HunyuanVideo's and CogVideoX's pipelines scale latents (Wan normalizes instead)."""
    vae = pipeline.vae

    @torch.no_grad()
    def encode(videos: Tensor) -> Tensor:
        latents = vae.encode(videos.to(vae.device, vae.dtype) * 2 - 1).latent_dist.mode()
        return latents * vae.config.scaling_factor

    return encode


def latent_video_shape(channels: int, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
    """``c f h w`` of the latent of a ``num_frames × height × width`` video: the causal video VAEs keep
    the first frame and compress the rest 4× in time, and 8× in space."""
    return (channels, (num_frames - 1) // VAE_TIME + 1, height // VAE_SPACE, width // VAE_SPACE)


class DiffusersNetwork(nn.Module):
    """Base of the wrappers that give a diffusers transformer this package's network call
    ``(x, timestep, text…, feature_blocks=(), feature_heads=False) → v [, features [, head features]]``.
    Each wrapper names the transformer's blocks in order as ``blocks`` (the FSDP2 and
    activation-checkpointing units, and the discriminator's feature layers), has an ``output_head``
    that takes a block's video tokens through the transformer's own tail (norm, projection,
    unpatchify) and says how many token frames a latent video has (``feature_frames``)."""

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

    @property
    def discriminator_blocks(self) -> range:
        """The blocks the discriminator reads every k-th of, counted from the first (official: all)."""
        return range(len(self.blocks))

    # ---- context parallelism (context_parallel.py) ----------------------------------------------

    context: ContextGroup | None = None  # the group this network's tokens are split over, once enabled

    def context_parallel_plan(self) -> dict | None:
        """Where the transformer's tokens are split and gathered (diffusers' ``_cp_plan`` format,
        paths from the transformer); None: the family has none."""
        return getattr(self.transformer, "_cp_plan", None)

    def enable_context_parallel(self, group: ContextGroup, copies: Mapping[str, nn.Module] | None = None) -> None:
        """Split this network's tokens over ``group``: the plan's hooks on the transformer (and on
        ``copies``: modules standing in for the ones at those paths, e.g. the detail expert's Ψ),
        attention that sees the whole sequence, and block features gathered whole."""
        plan = self.context_parallel_plan()
        if plan is None:
            raise UserError(f"context parallelism is not available for {type(self.transformer).__name__}.")
        apply_plan(self.transformer, plan, group)
        for path, module in (copies or {}).items():
            apply_plan(module, plan_under(plan, path.removeprefix("transformer.")), group)
        self.use_context_attention(group)
        self.context = group

    def use_context_attention(self, group: ContextGroup) -> None:
        """Attention over the split sequence: diffusers' own (Ulysses / ring), through the parallel
        config every attention processor reads (Wan's uses it for self-attention only)."""
        config = diffusers_attention_config(group)
        for module in self.transformer.modules():
            processor = getattr(module, "processor", None)
            if processor is not None and hasattr(processor, "_parallel_config"):
                processor._parallel_config = config

    def whole_sequence(self, features: list[Tensor]) -> list[Tensor]:
        """Block features (b n d) with every token: gathered over the group under context parallelism
        (the discriminator normalizes per frame; the output head unpatchifies the whole video)."""
        return features if self.context is None else [gather(f, 1, self.context) for f in features]


class LatentVideoTeacher(nn.Module):
    """Latent shapes, the flow-matching grid, the device, students, and prompt encoding and decoding
    through optional pipeline parts, for adapters that set ``network``, ``_latent_shape``, ``shift``
    and ``num_steps``, and call ``use_codec(parts.codec)`` when built from a pipeline folder.

    Every tensor the teacher holds follows ``.to(device / dtype)``: the network and the
    parameterization are child modules, the negative prompt's condition is held in buffers, and the
    pipeline's text encoders and VAE (held outside the module tree, so that no checkpoint or FSDP
    state holds them and a student copy shares them) are moved by ``_apply``."""

    network: nn.Module
    _latent_shape: tuple[int, int, int, int]
    shift: float
    num_steps: int
    _encode: Callable[[list[str]], TextCondition] | None = None
    _decode: Callable[[Tensor], Tensor] | None = None
    _pipeline_modules: tuple[nn.Module, ...] = ()
    settings: DiffusersTeacherConfig | None = None  # what it was loaded with (set by the loader)

    # What a family's adapter declares about its pipeline folder:
    pipeline_name: str  # model_index.json's _class_name, e.g. "WanPipeline"
    transformer_class: str  # the diffusers transformer class in transformer/
    text_parts: tuple[str, ...]  # the folder's text encoders and tokenizers
    default_guidance: float  # classifier-free guidance when the config gives none
    max_text_tokens: int  # the pipeline's max_sequence_length
    fps: int  # frames per second of the family's videos
    # prompt_encoder(pipeline, max_text_tokens) → prompts → TextCondition; latent_encoder(pipeline) →
    # videos in [0, 1] → latents; latent_decoder(pipeline) → latents → videos in [0, 1]; and
    # ``from_pipeline(folder, config)`` built on ``load_pipeline_parts``.
    display_upscale = 1  # videos are written at their own size (the tiny teacher's are enlarged)

    @classmethod
    def native_video(cls, folder: Path) -> dict[str, int]:
        """``num_frames``, ``height``, ``width`` the pipeline generates when not told: its ``__call__``'s
        defaults, or, where those are None (CogVideoX), its transformer's sample size."""
        import diffusers

        transformer = json.loads((folder / "transformer" / "config.json").read_text())
        defaults = inspect.signature(getattr(diffusers, cls.pipeline_name).__call__).parameters
        frames = transformer.get("sample_frames") or defaults["num_frames"].default
        height = defaults["height"].default or transformer["sample_height"] * VAE_SPACE
        width = defaults["width"].default or transformer["sample_width"] * VAE_SPACE
        return {"num_frames": int(frames), "height": int(height), "width": int(width)}

    @property
    def has_text_encoders(self) -> bool:
        return self._encode is not None

    @property
    def has_vae(self) -> bool:
        return self._decode is not None

    def use_codec(self, codec: PipelineCodec) -> LatentVideoTeacher:
        """Prompt encoding and decoding through the text encoders and VAE ``codec`` holds."""
        self._encode, self._decode, self._pipeline_modules = codec.encode, codec.decode, codec.modules
        return self

    @property
    def negative(self) -> TextCondition | None:
        """The negative prompt's condition (1 l d): CFG's unconditional branch (None: no CFG possible)."""
        if getattr(self, "negative_embeds", None) is None:
            return None
        return TextCondition(self.negative_embeds, self.negative_mask, self.negative_pooled)

    @negative.setter
    def negative(self, condition: TextCondition | None) -> None:
        parts = (None,) * 3 if condition is None else (condition.embeds, condition.mask, condition.pooled)
        for name, tensor in zip(("negative_embeds", "negative_mask", "negative_pooled"), parts, strict=True):
            self.register_buffer(name, tensor, persistent=False)

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        if recurse:  # .to(device), .half() …: the pipeline parts go where the teacher goes
            for module in self._pipeline_modules:
                module._apply(fn)
        return self

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

    guidance_scale: float  # (``negative`` None: loaded without text encoders, so no CFG)

    def predict(
        self,
        x: Tensor,
        sigma: Tensor,
        condition: TextCondition,
        guidance_scale: float | None = None,
        feature_blocks: Sequence[int] = (),
        feature_heads: bool = False,
        **network_kwargs,
    ) -> Prediction:
        scale = self.guidance_scale if guidance_scale is None else guidance_scale
        if scale != 1.0 and self.negative is None:
            raise UserError(
                f"classifier-free guidance needs the negative prompt's embeddings; load this "
                f"{type(self).__name__} with `text_encoders: true`."
            )
        negative = None if scale == 1.0 else self.negative.expand(len(condition))
        return guided_prediction(
            self.network,
            self.parameterization,
            x,
            sigma,
            condition,
            negative,
            scale,
            feature_blocks,
            feature_heads,
            **network_kwargs,
        )
