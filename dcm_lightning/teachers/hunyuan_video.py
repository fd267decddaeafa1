"""HunyuanVideo (diffusers ``HunyuanVideoTransformer3DModel``) behind the VideoModel interface.

Rectified flow with v = ε − x0 and model timestep 1000·σ, as HunyuanVideoPipeline's
FlowMatchEulerDiscreteScheduler. HunyuanVideo is guidance-distilled: its guidance is an embedded
input (scale · 1000), one forward per step, which the teacher and its students keep
(``embedded_guidance``, official 6.0); classifier-free guidance against a negative prompt
("true CFG", ``guidance_scale`` > 1) is possible but off by default, as in the pipeline. The text
condition is the Llama hidden states with their attention mask (padding on the right) plus the
CLIP pooled projection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from dcm_lightning.conditioning import TextCondition
from dcm_lightning.context_parallel import ContextGroup
from dcm_lightning.diffusion import FlowMatching, classifier_free_guidance
from dcm_lightning.errors import UserError
from dcm_lightning.teachers.base import LORA_TARGETS, Prediction
from dcm_lightning.teachers.diffusers_base import (
    DiffusersNetwork,
    DiffusersTeacherConfig,
    LatentVideoTeacher,
    load_pipeline_parts,
    scaled_latent_encoder,
)
from dcm_lightning.teachers.features import (
    block_outputs,
    first_call,
    pack_network_output,
    unpack_network_output,
)
from dcm_lightning.teachers.hunyuan_video_parallel import HUNYUAN_CP_PLAN, HunyuanVideoContextParallelProcessor

HUNYUAN_PSI = ("transformer.time_text_embed", "transformer.norm_out", "transformer.proj_out")


class HunyuanVideoNetwork(DiffusersNetwork):
    """``(x: b c f h w, timestep: (b,) = 1000·σ, text_embeds: b l d, text_mask: b l, pooled: b p,
    guidance: (b,) = scale·1000) → v`` (plus the image-token hidden states of ``feature_blocks``,
    numbered over the dual-stream then the single-stream blocks, and with ``feature_heads`` each
    through the output head)."""

    @property
    def blocks(self) -> nn.ModuleList:
        """Every transformer block in order: the FSDP2 and activation-checkpointing units."""
        return nn.ModuleList([*self.transformer.transformer_blocks, *self.transformer.single_transformer_blocks])

    def context_parallel_plan(self) -> dict:
        return HUNYUAN_CP_PLAN

    def use_context_attention(self, group: ContextGroup) -> None:
        """The joint attention of every dual- and single-stream block split over ``group`` (the text
        token refiner stays whole)."""
        for block in self.blocks:
            block.attn.set_processor(HunyuanVideoContextParallelProcessor(group))

    @property
    def discriminator_blocks(self) -> range:
        """The official discriminator reads the single-stream blocks only."""
        return range(len(self.transformer.transformer_blocks), len(self.blocks))

    def feature_frames(self, latent_frames: int) -> int:
        return latent_frames // self.config.patch_size_t

    def forward(
        self,
        x: Tensor,
        timestep: Tensor,
        text_embeds: Tensor,
        text_mask: Tensor,
        pooled: Tensor,
        guidance: Tensor,
        feature_blocks: Sequence[int] = (),
        feature_heads: bool = False,
    ):
        with block_outputs(self.blocks, feature_blocks) as features, first_call(self.transformer.norm_out) as norm:
            v = self.transformer(
                hidden_states=x,
                timestep=timestep,
                encoder_hidden_states=text_embeds,
                encoder_attention_mask=text_mask.to(text_embeds.dtype),
                pooled_projections=pooled,
                guidance=guidance,
                return_dict=False,
            )[0]
        features = self.whole_sequence(features)
        heads = (lambda: [self.output_head(f, norm["args"][1], x) for f in features]) if feature_heads else None
        return pack_network_output(v, features, heads)

    def output_head(self, hidden: Tensor, temb: Tensor, x: Tensor) -> Tensor:
        """Image tokens (b n d) → b c f h w through the transformer's own tail: ``norm_out(·, temb)``,
        ``proj_out`` and the unpatchify of HunyuanVideoTransformer3DModel.forward."""
        transformer = self.transformer
        batch, _, frames, height, width = x.shape
        p, p_t = transformer.config.patch_size, transformer.config.patch_size_t
        # proj_out.forward, not __call__: no context-parallel gather, the features are whole already
        out = transformer.proj_out.forward(transformer.norm_out(hidden, temb))
        out = out.reshape(batch, frames // p_t, height // p, width // p, -1, p_t, p, p)
        return out.permute(0, 4, 1, 5, 2, 6, 3, 7).flatten(6, 7).flatten(4, 5).flatten(2, 3)


def _prompt_encoder(pipeline, max_tokens: int) -> Callable[[Sequence[str]], TextCondition]:
    """prompts → Llama hidden states with their mask and the CLIP pooled vector, by the pipeline's own
    ``encode_prompt`` (on the pipeline's device)."""

    @torch.no_grad()
    def encode(prompts: Sequence[str]) -> TextCondition:
        embeds, pooled, mask = pipeline.encode_prompt(prompt=list(prompts), max_sequence_length=max_tokens)
        return TextCondition(embeds, mask.bool(), pooled)

    return encode


def _latent_decoder(pipeline) -> Callable[[Tensor], Tensor]:
    """latents (b c f h w) → videos (b c f h w in [0, 1]) as HunyuanVideoPipeline decodes them."""
    vae = pipeline.vae

    @torch.no_grad()
    def decode(latents: Tensor) -> Tensor:
        latents = latents.to(vae.device, vae.dtype)
        video = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
        return (video.float() / 2 + 0.5).clamp(0, 1)

    return decode


class HunyuanVideoTeacher(LatentVideoTeacher):
    """Args:
    network: the wrapped transformer.
    latent_shape: ``c f h w`` of one latent video (720p, 129 frames: 16, 33, 90, 160).
    shift, num_steps: the sampler's grid (HunyuanVideo: 7.0, 50; the paper's DCM runs: 17).
    embedded_guidance: the guidance the transformer is given as an input (official 6.0).
    guidance_scale: true classifier-free guidance against ``negative`` (1.0: off, one forward per step).
    negative: the negative prompt's condition, needed only when guidance_scale > 1.
    Built by ``from_pipeline``, it encodes prompts with the pipeline's Llama + CLIP (a TextCondition
    with ``pooled``) and decodes with its VAE when the config loads them (``text_encoders``, ``vae``).
    """

    parameterization = FlowMatching()
    psi_modules = HUNYUAN_PSI
    lora_targets = LORA_TARGETS  # diffusers' Attention: to_q, to_k, to_v, to_out.0
    pipeline_name = "HunyuanVideoPipeline"
    transformer_class = "HunyuanVideoTransformer3DModel"
    text_parts = ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2")
    default_guidance = 1.0  # guidance-distilled: embedded guidance, no true CFG
    max_text_tokens = 256
    fps = 24
    prompt_encoder = staticmethod(_prompt_encoder)
    latent_encoder = staticmethod(scaled_latent_encoder)
    latent_decoder = staticmethod(_latent_decoder)

    def __init__(
        self,
        network: HunyuanVideoNetwork,
        latent_shape: tuple[int, int, int, int],
        shift: float = 7.0,
        num_steps: int = 50,
        embedded_guidance: float = 6.0,
        guidance_scale: float = 1.0,
        negative: TextCondition | None = None,
    ) -> None:
        super().__init__()
        if guidance_scale != 1.0 and negative is None:
            raise UserError("true CFG (guidance_scale > 1) on HunyuanVideo needs the negative prompt's embeddings.")
        self.network = network
        self._latent_shape = tuple(latent_shape)
        self.shift, self.num_steps = shift, num_steps
        self.embedded_guidance, self.guidance_scale, self.negative = embedded_guidance, guidance_scale, negative

    @classmethod
    def from_pipeline(cls, folder: Path, config: DiffusersTeacherConfig) -> HunyuanVideoTeacher:
        parts = load_pipeline_parts(cls, folder, config)
        return cls(
            HunyuanVideoNetwork(parts.transformer),
            parts.latent_shape,
            shift=parts.scheduler.get("shift", 1.0) if config.shift is None else config.shift,
            num_steps=config.num_steps,
            embedded_guidance=config.embedded_guidance,
            guidance_scale=parts.guidance_scale,
            negative=parts.negative,
        ).use_codec(parts.codec)

    def _velocity(self, x, timestep, condition: TextCondition, feature_blocks, feature_heads, **network_kwargs):
        """(v, block features, their output-head projections) of one forward."""
        guidance = torch.full_like(timestep, self.embedded_guidance * 1000.0)
        args = (x, timestep, condition.embeds, condition.mask, condition.pooled.to(x.dtype), guidance)
        out = self.network(*args, feature_blocks=feature_blocks, feature_heads=feature_heads, **network_kwargs)
        return unpack_network_output(out, feature_blocks)

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
        sigma = sigma.to(x.dtype).reshape(-1)
        timestep = self.parameterization.model_timestep(sigma)
        v, features, heads = self._velocity(x, timestep, condition, feature_blocks, feature_heads, **network_kwargs)
        if scale != 1.0:  # the pipeline's true CFG: a second forward with the negative prompt
            negative = self.negative.expand(len(condition))
            v_negative, _, _ = self._velocity(x, timestep, negative, (), False, **network_kwargs)
            v = classifier_free_guidance(v, v_negative, scale)
        x0, eps = self.parameterization.to_x0_eps(x, sigma.view(-1, 1, 1, 1, 1), v)
        return Prediction(x0=x0, eps=eps, features=features, head_features=heads)
