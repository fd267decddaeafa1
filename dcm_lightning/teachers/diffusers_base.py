"""What the diffusers-transformer adapters share: the network wrapper's base and the latent-video
side of the teacher interface."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dcm_lightning.data.moving_shapes.text import TextCondition
from dcm_lightning.diffusion import teacher_sigmas
from dcm_lightning.teachers.base import Prediction, guided_prediction, trainable_copy

VAE_TIME, VAE_SPACE = 4, 8  # HunyuanVideo's and Wan's causal video VAEs: 4× in time, 8× in space


class DiffusersNetwork(nn.Module):
    """Base of the wrappers that give a diffusers transformer this package's network call
    ``(x, timestep, text…, feature_blocks=()) → v [, features]``."""

    def __init__(self, transformer: nn.Module) -> None:
        super().__init__()
        self.transformer = transformer

    @property
    def config(self):
        return self.transformer.config


class LatentVideoTeacher(nn.Module):
    """Latent shapes, the flow-matching grid, the device and students, for adapters that set
    ``network``, ``_latent_shape``, ``shift`` and ``num_steps``."""

    network: nn.Module
    _latent_shape: tuple[int, int, int, int]
    shift: float
    num_steps: int

    def latent_shape(self) -> tuple[int, int, int, int]:
        return self._latent_shape

    def video_shape(self) -> tuple[int, int, int, int]:
        """``c f h w`` of the decoded video."""
        _, f, h, w = self._latent_shape
        return (3, (f - 1) * VAE_TIME + 1, h * VAE_SPACE, w * VAE_SPACE)

    def sigmas(self) -> Tensor:
        return teacher_sigmas(self.num_steps, self.shift)

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def student_copy(self):
        """A trainable copy with classifier-free guidance distilled (one forward per step)."""
        return trainable_copy(self)


class NegativePromptTeacher(LatentVideoTeacher):
    """Classifier-free guidance against a negative prompt's condition ``negative`` (1 l d), the
    conditional and unconditional halves batched in one network call (Wan, CogVideoX)."""

    negative: TextCondition
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
        negative = self.negative.expand(len(condition))
        return guided_prediction(
            self.network, self.parameterization, x, sigma, condition, negative, scale, feature_blocks, **network_kwargs
        )
