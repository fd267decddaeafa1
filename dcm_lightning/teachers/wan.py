"""Wan2.1 text-to-video (diffusers ``WanTransformer3DModel``) behind the VideoModel interface.

Rectified flow with v = ε − x0 and model timestep 1000·σ (Wan's UniPC sampler integrates the same
ODE); classifier-free guidance against the negative prompt's embeddings (Wan's default negative
prompt is ""). The transformer sees every text token, so padded tokens are zeroed as WanPipeline
zero-pads them. Prompt encoding (UMT5) and decoding (Wan's VAE) are optional parts: a training run
from a trajectory cache needs neither.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from dcm_lightning.conditioning import TextCondition
from dcm_lightning.diffusion import FlowMatching
from dcm_lightning.teachers.base import LORA_TARGETS
from dcm_lightning.teachers.diffusers_base import (
    DiffusersNetwork,
    DiffusersTeacherConfig,
    NegativePromptTeacher,
    load_pipeline_parts,
)
from dcm_lightning.teachers.features import block_outputs, first_call, pack_network_output

# Wan2.1-T2V-1.3B's transformer (diffusers' conversion of the official config): 30 blocks of width 1536.
WAN21_T2V_1_3B = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=12,
    attention_head_dim=128,
    in_channels=16,
    out_channels=16,
    text_dim=4096,
    freq_dim=256,
    ffn_dim=8960,
    num_layers=30,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
    rope_max_seq_len=1024,
)
# Ψ as the official Wan detail expert has it (Vchitect/DCM modeling_wan.py): a copy of the whole
# condition embedder (time embedding, its projection and the text projection) and of proj_out; the
# output norm's scale_shift_table stays shared and frozen.
WAN_PSI = ("transformer.condition_embedder", "transformer.proj_out")


class WanNetwork(DiffusersNetwork):
    """``(x: b c f h w, timestep: (b,) = 1000·σ, text_embeds: b l d, text_mask: b l) → v`` (plus the
    hidden states of ``feature_blocks`` and, with ``feature_heads``, each through the output head);
    each of its ``blocks`` is the FSDP2 and activation-checkpointing unit."""

    @property
    def blocks(self) -> nn.ModuleList:
        return self.transformer.blocks

    def feature_frames(self, latent_frames: int) -> int:
        return latent_frames // self.config.patch_size[0]

    def forward(
        self,
        x: Tensor,
        timestep: Tensor,
        text_embeds: Tensor,
        text_mask: Tensor,
        feature_blocks: Sequence[int] = (),
        feature_heads: bool = False,
    ):
        text = text_embeds * text_mask.unsqueeze(-1).to(text_embeds.dtype)
        transformer = self.transformer
        with (
            block_outputs(transformer.blocks, feature_blocks) as features,
            first_call(transformer.condition_embedder) as conditions,
        ):
            v = transformer(hidden_states=x, timestep=timestep, encoder_hidden_states=text, return_dict=False)[0]
        features = self.whole_sequence(features)
        heads = (lambda: [self.output_head(f, conditions["output"][0], x) for f in features]) if feature_heads else None
        return pack_network_output(v, features, heads)

    def output_head(self, hidden: Tensor, temb: Tensor, x: Tensor) -> Tensor:
        """Video tokens (b n d) → b c f h w through the transformer's own tail: the norm modulated by
        ``scale_shift_table`` + temb, ``proj_out`` and the unpatchify of WanTransformer3DModel.forward."""
        transformer = self.transformer
        batch, _, frames, height, width = x.shape
        p_t, p_h, p_w = transformer.config.patch_size
        table = transformer.scale_shift_table.to(temb.device)
        if temb.ndim == 3:  # per-token timesteps (Wan 2.2 TI2V)
            shift, scale = (table.unsqueeze(0) + temb.unsqueeze(2)).chunk(2, dim=2)
            shift, scale = shift.squeeze(2), scale.squeeze(2)
        else:
            shift, scale = (table + temb.unsqueeze(1)).chunk(2, dim=1)
        shift, scale = shift.to(hidden.device), scale.to(hidden.device)
        out = (transformer.norm_out(hidden.float()) * (1 + scale) + shift).type_as(hidden)
        out = transformer.proj_out.forward(out)  # not __call__: no context-parallel gather, these are whole
        out = out.reshape(batch, frames // p_t, height // p_h, width // p_w, p_t, p_h, p_w, -1)
        return out.permute(0, 7, 1, 4, 2, 5, 3, 6).flatten(6, 7).flatten(4, 5).flatten(2, 3)


def _prompt_encoder(pipeline, max_tokens: int) -> Callable[[Sequence[str]], TextCondition]:
    """prompts → UMT5 embeddings by the pipeline's own ``encode_prompt``; the mask marks the tokens
    before the zero padding WanPipeline adds."""

    @torch.no_grad()
    def encode(prompts: Sequence[str]) -> TextCondition:
        embeds, _ = pipeline.encode_prompt(
            prompt=list(prompts), do_classifier_free_guidance=False, max_sequence_length=max_tokens
        )
        return TextCondition(embeds, embeds.abs().amax(dim=-1) > 0)

    return encode


def _latent_statistics(vae, like: Tensor) -> tuple[Tensor, Tensor]:
    """Wan's VAE's per-channel latent mean and std (1 c 1 1 1), as ``like``'s dtype and device."""
    shape = (1, vae.config.z_dim, 1, 1, 1)
    config = vae.config
    return torch.tensor(config.latents_mean).view(shape).to(like), torch.tensor(config.latents_std).view(shape).to(like)


def _latent_encoder(pipeline) -> Callable[[Tensor], Tensor]:
    """videos (b c f h w in [0, 1]) → latents: the mean of Wan's VAE posterior, normalized by the VAE's
    per-channel latents_mean / latents_std as the pipelines normalize them."""
    vae = pipeline.vae

    @torch.no_grad()
    def encode(videos: Tensor) -> Tensor:
        latents = vae.encode(videos.to(vae.device, vae.dtype) * 2 - 1).latent_dist.mode()
        mean, std = _latent_statistics(vae, latents)
        return (latents - mean) / std

    return encode


def _latent_decoder(pipeline) -> Callable[[Tensor], Tensor]:
    """latents (b c f h w) → videos (b c f h w in [0, 1]): Wan's VAE after un-normalizing the latents."""
    vae = pipeline.vae

    @torch.no_grad()
    def decode(latents: Tensor) -> Tensor:
        latents = latents.to(vae.device, vae.dtype)
        mean, std = _latent_statistics(vae, latents)
        video = vae.decode(latents * std + mean, return_dict=False)[0]
        return (video.float() / 2 + 0.5).clamp(0, 1)

    return decode


class WanTeacher(NegativePromptTeacher):
    """Args:
    network: the wrapped transformer.
    negative: the negative prompt's embeddings (1 l d) and mask, the unconditional branch of CFG (None
        without text encoders: the teacher then runs only unguided, as from a trajectory cache).
    latent_shape: ``c f h w`` of one latent video (Wan2.1 480p, 81 frames: 16, 21, 60, 104).
    shift, guidance_scale, num_steps: the teacher's sampler (Wan2.1 T2V: 3.0, 5.0, 50).
    Built by ``from_pipeline``, it encodes prompts with the pipeline's UMT5 and decodes with its VAE
    when the config loads them (``text_encoders``, ``vae``).
    """

    parameterization = FlowMatching()
    psi_modules = WAN_PSI
    lora_targets = LORA_TARGETS  # diffusers' Attention: to_q, to_k, to_v, to_out.0
    pipeline_name = "WanPipeline"
    transformer_class = "WanTransformer3DModel"
    text_parts = ("text_encoder", "tokenizer")
    default_guidance = 5.0
    max_text_tokens = 512
    fps = 16
    prompt_encoder = staticmethod(_prompt_encoder)
    latent_encoder = staticmethod(_latent_encoder)
    latent_decoder = staticmethod(_latent_decoder)

    def __init__(
        self,
        network: WanNetwork,
        negative: TextCondition | None,
        latent_shape: tuple[int, int, int, int],
        shift: float = 3.0,
        guidance_scale: float = 5.0,
        num_steps: int = 50,
    ) -> None:
        super().__init__()
        self.network = network
        self.negative = negative
        self._latent_shape = tuple(latent_shape)
        self.shift, self.guidance_scale, self.num_steps = shift, guidance_scale, num_steps

    @classmethod
    def from_pipeline(cls, folder: Path, config: DiffusersTeacherConfig) -> WanTeacher:
        parts = load_pipeline_parts(cls, folder, config)
        return cls(
            WanNetwork(parts.transformer),
            parts.negative,
            parts.latent_shape,
            shift=parts.scheduler.get("flow_shift", 1.0) if config.shift is None else config.shift,
            guidance_scale=parts.guidance_scale,
            num_steps=config.num_steps,
        ).use_codec(parts.codec)
