"""What the diffusers-transformer adapters share: the network wrapper's base and the latent-video
side of the teacher interface."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from dcm_lightning.data.moving_shapes.text import TextCondition
from dcm_lightning.diffusion import teacher_sigmas
from dcm_lightning.errors import UserError
from dcm_lightning.teachers.base import Prediction, guided_prediction, trainable_copy

VAE_TIME, VAE_SPACE = 4, 8  # HunyuanVideo's and Wan's causal video VAEs: 4× in time, 8× in space


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
