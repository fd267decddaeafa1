"""CogVideoX (diffusers ``CogVideoXTransformer3DModel``) behind the VideoModel interface.

Variance-preserving v-prediction on the teacher's own DDPM ᾱ schedule (``VPrediction``; noise
coordinate σ = t / 999), classifier-free guidance against the negative prompt, and the
CogVideoXDDIMScheduler's "trailing" timesteps as the sampling grid. The transformer takes
``b f c h w``; the wrapper converts from and to this package's ``b c f h w``. Grid index i of the
distillation path is the i-th trailing timestep from the clean end (``sigma_at`` on ``sigmas()``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace

import torch
from einops import rearrange
from torch import Tensor, nn

from dcm_lightning.conditioning import TextCondition
from dcm_lightning.context_parallel import ContextGroup
from dcm_lightning.diffusion import VPrediction
from dcm_lightning.teachers.base import LORA_TARGETS
from dcm_lightning.teachers.cogvideox_parallel import COGVIDEOX_CP_PLAN, CogVideoXContextParallelProcessor
from dcm_lightning.teachers.diffusers_base import (
    VAE_SPACE,
    DiffusersNetwork,
    DiffusersTeacherConfig,
    NegativePromptTeacher,
    load_pipeline_parts,
    scaled_latent_encoder,
)
from dcm_lightning.teachers.features import block_outputs, first_call, pack_network_output

COGVIDEOX_PSI = ("transformer.time_embedding", "transformer.norm_out", "transformer.proj_out")


class CogVideoXNetwork(DiffusersNetwork):
    """``(x: b c f h w, timestep: (b,) DDPM t, text_embeds: b l d, text_mask: b l) → v`` (plus the
    video-token hidden states of ``feature_blocks``). Without rotary embeddings (CogVideoX-2b) the
    text must be exactly ``max_text_seq_length`` tokens (226), padded, as the pipeline pads."""

    def __init__(self, transformer: nn.Module, image_rotary_emb: tuple[Tensor, Tensor] | None = None) -> None:
        super().__init__(transformer)
        # Buffers (not saved), so that they follow the network to its device.
        cos, sin = image_rotary_emb if image_rotary_emb is not None else (None, None)
        self.register_buffer("rotary_cos", cos, persistent=False)
        self.register_buffer("rotary_sin", sin, persistent=False)

    @property
    def image_rotary_emb(self) -> tuple[Tensor, Tensor] | None:
        return None if self.rotary_cos is None else (self.rotary_cos, self.rotary_sin)

    @property
    def blocks(self) -> nn.ModuleList:
        return self.transformer.transformer_blocks

    def context_parallel_plan(self) -> dict:
        return COGVIDEOX_CP_PLAN

    def use_context_attention(self, group: ContextGroup) -> None:
        """Every block's joint attention split over ``group``."""
        for block in self.blocks:
            block.attn1.set_processor(CogVideoXContextParallelProcessor(group))

    def feature_frames(self, latent_frames: int) -> int:
        p_t = self.config.patch_size_t or 1
        return (latent_frames + p_t - 1) // p_t

    def forward(
        self,
        x: Tensor,
        timestep: Tensor,
        text_embeds: Tensor,
        text_mask: Tensor,
        feature_blocks: Sequence[int] = (),
        feature_heads: bool = False,
    ):
        with block_outputs(self.blocks, feature_blocks) as features, first_call(self.transformer.norm_out) as norm:
            v = self.transformer(
                hidden_states=rearrange(x, "b c f h w -> b f c h w"),
                encoder_hidden_states=text_embeds,
                timestep=timestep,
                image_rotary_emb=self.image_rotary_emb,
                return_dict=False,
            )[0]
        v = rearrange(v, "b f c h w -> b c f h w")
        features = self.whole_sequence(features)
        heads = (lambda: [self.output_head(f, norm["kwargs"]["temb"], x) for f in features]) if feature_heads else None
        return pack_network_output(v, features, heads)

    def output_head(self, hidden: Tensor, temb: Tensor, x: Tensor) -> Tensor:
        """Video tokens (b n d) → b c f h w through the transformer's own tail: ``norm_final`` (per
        token, so the text tokens CogVideoX-5b normalizes with them change nothing), ``norm_out(·,
        temb)``, ``proj_out`` and the unpatchify of CogVideoXTransformer3DModel.forward."""
        transformer = self.transformer
        batch, _, frames, height, width = x.shape
        p, p_t = transformer.config.patch_size, transformer.config.patch_size_t
        # proj_out.forward, not __call__: no context-parallel gather, the features are whole already
        out = transformer.proj_out.forward(transformer.norm_out(transformer.norm_final(hidden), temb=temb))
        if p_t is None:
            out = out.reshape(batch, frames, height // p, width // p, -1, p, p)
            out = out.permute(0, 1, 4, 2, 5, 3, 6).flatten(5, 6).flatten(3, 4)
        else:
            out = out.reshape(batch, (frames + p_t - 1) // p_t, height // p, width // p, -1, p_t, p, p)
            out = out.permute(0, 1, 5, 4, 2, 6, 3, 7).flatten(6, 7).flatten(4, 5).flatten(1, 2)
        return rearrange(out, "b f c h w -> b c f h w")


def trailing_sigmas(num_steps: int, num_train_timesteps: int = 1000) -> Tensor:
    """CogVideoXDDIMScheduler's ``timestep_spacing="trailing"`` timesteps as σ = t / (T − 1), then 0."""
    timesteps = torch.round(torch.arange(num_train_timesteps, 0, -num_train_timesteps / num_steps)) - 1
    return torch.cat([timesteps.double() / (num_train_timesteps - 1), torch.zeros(1, dtype=torch.float64)])


def _prompt_encoder(pipeline, max_tokens: int) -> Callable[[Sequence[str]], TextCondition]:
    """prompts → T5 embeddings (padded to ``max_tokens``, all attended) by the pipeline's ``encode_prompt``."""

    @torch.no_grad()
    def encode(prompts: Sequence[str]) -> TextCondition:
        embeds, _ = pipeline.encode_prompt(
            prompt=list(prompts), do_classifier_free_guidance=False, max_sequence_length=max_tokens
        )
        return TextCondition(embeds, torch.ones(embeds.shape[:2], dtype=torch.bool, device=embeds.device))

    return encode


def _latent_decoder(pipeline) -> Callable[[Tensor], Tensor]:
    """latents (b c f h w) → videos (b c f h w in [0, 1]) by the pipeline's own ``decode_latents``."""

    @torch.no_grad()
    def decode(latents: Tensor) -> Tensor:
        vae = pipeline.vae
        video = pipeline.decode_latents(latents.to(vae.device, vae.dtype).permute(0, 2, 1, 3, 4))
        return (video.float() / 2 + 0.5).clamp(0, 1)

    return decode


class CogVideoXTeacher(NegativePromptTeacher):
    """Args:
    network: the wrapped transformer.
    alphas_cumprod: the scheduler's ᾱ (CogVideoX: scaled-linear betas, SNR shift 3, zero terminal SNR).
    negative: the negative prompt's embeddings (1 l d) and mask, the unconditional branch of CFG (None
        without text encoders: the teacher then runs only unguided, as from a trajectory cache).
    latent_shape: ``c f h w`` of one latent video (CogVideoX-2b, 49 frames at 480×720: 16, 13, 60, 90).
    guidance_scale, num_steps: the sampler's (official 6, 50).
    Built by ``from_pipeline``, it encodes prompts with the pipeline's T5 and decodes with its VAE
    when the config loads them (``text_encoders``, ``vae``).
    """

    psi_modules = COGVIDEOX_PSI
    lora_targets = LORA_TARGETS  # diffusers' Attention: to_q, to_k, to_v, to_out.0
    pipeline_name = "CogVideoXPipeline"
    transformer_class = "CogVideoXTransformer3DModel"
    text_parts = ("text_encoder", "tokenizer")
    default_guidance = 6.0
    max_text_tokens = 226
    fps = 8
    prompt_encoder = staticmethod(_prompt_encoder)
    latent_encoder = staticmethod(scaled_latent_encoder)
    latent_decoder = staticmethod(_latent_decoder)

    def __init__(
        self,
        network: CogVideoXNetwork,
        alphas_cumprod: Tensor,
        negative: TextCondition | None,
        latent_shape: tuple[int, int, int, int],
        guidance_scale: float = 6.0,
        num_steps: int = 50,
    ) -> None:
        super().__init__()
        self.network = network
        self.parameterization = VPrediction(alphas_cumprod)
        self.negative = negative
        self._latent_shape = tuple(latent_shape)
        self.guidance_scale, self.num_steps = guidance_scale, num_steps
        self.shift = None  # a VP teacher's grid is its scheduler's timesteps, not a shifted flow grid

    @classmethod
    def from_pipeline(cls, folder: Path, config: DiffusersTeacherConfig) -> CogVideoXTeacher:
        from diffusers import CogVideoXDDIMScheduler, CogVideoXPipeline

        parts = load_pipeline_parts(cls, folder, config)
        transformer, latent_shape = parts.transformer, parts.latent_shape
        rotary = None
        if transformer.config.use_rotary_positional_embeddings:  # CogVideoX-5b: the pipeline's own RoPE
            holder = SimpleNamespace(vae_scale_factor_spatial=VAE_SPACE, transformer=transformer)
            rotary = CogVideoXPipeline._prepare_rotary_positional_embeddings(
                holder, config.height, config.width, latent_shape[1], torch.device("cpu")
            )
        return cls(
            CogVideoXNetwork(transformer, rotary),
            CogVideoXDDIMScheduler.from_pretrained(folder, subfolder="scheduler").alphas_cumprod,
            parts.negative,
            latent_shape,
            guidance_scale=parts.guidance_scale,
            num_steps=config.num_steps,
        ).use_codec(parts.codec)

    def sigmas(self, num_steps: int | None = None) -> Tensor:
        return trailing_sigmas(num_steps or self.num_steps, self.parameterization.num_train_timesteps)
