"""The one interface every teacher adapter — and every student, which is an adapter with other
weights — implements (docs/design.md §2 "Noise convention"), and the teacher facts the layers above use:
the identity fingerprint and the LoRA targets."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from dcm_lightning.diffusion import Parameterization, classifier_free_guidance
from dcm_lightning.teachers.features import unpack_network_output

# diffusers' Attention projections (and the tiny DiT's, named alike): where the detail expert's LoRA goes.
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


@dataclass
class Prediction:
    """A teacher's (or student's) answer at noise level σ."""

    x0: Tensor  # b c f h w
    eps: Tensor  # b c f h w
    features: list[Tensor] = field(default_factory=list)  # per requested block: b n d
    head_features: list[Tensor] = field(default_factory=list)  # those through the output head: b c f h w


class VideoModel(Protocol):
    """What caches, samplers and the distillation losses may rely on, of a teacher or a student."""

    parameterization: Parameterization
    num_steps: int
    shift: float
    guidance_scale: float
    psi_modules: tuple[str, ...]  # top-level timestep-dependent layers the detail expert copies (Ψ)
    lora_targets: tuple[str, ...]  # the attention projections the detail expert's LoRA adapts
    fps: int  # frame rate of its videos
    display_upscale: int  # videos are written this many times enlarged (1 for real models)

    def encode_prompts(self, prompts: Sequence[str], open_vocabulary: bool = False) -> Any:
        """Condition for ``prompts``; a closed-vocabulary teacher (the tiny one) takes any text only
        with ``open_vocabulary`` (benchmark prompt lists), the others always."""
        ...

    def latent_shape(self) -> tuple[int, int, int, int]: ...

    def sigmas(self, num_steps: int | None = None) -> Tensor:
        """The N + 1 noise levels of the teacher's sampler (or of a ``num_steps`` one), descending to
        σ = 0; grid index i is level N − 1 − i (``sigma_at``)."""
        ...

    def video_shape(self) -> tuple[int, int, int, int]:
        """``c f h w`` of one decoded video."""
        ...

    def predict(
        self,
        x: Tensor,
        sigma: Tensor,
        condition: Any,
        guidance_scale: float | None = None,
        feature_blocks: Sequence[int] = (),
        feature_heads: bool = False,
    ) -> Prediction:
        """(x̂0, ε̂) at σ; with ``feature_blocks`` the conditional branch's hidden states after those
        blocks (``features``) and, with ``feature_heads``, each taken through the network's output head
        (``head_features``, latent-shaped)."""
        ...

    def decode(self, latents: Tensor) -> Tensor: ...


def guided_prediction(
    network: nn.Module,
    parameterization: Parameterization,
    x: Tensor,
    sigma: Tensor,
    condition: Any,
    null_condition: Any,
    guidance_scale: float,
    feature_blocks: Sequence[int] = (),
    feature_heads: bool = False,
    **network_kwargs,
) -> Prediction:
    """(x̂0, ε̂) of a network called as ``network(x, timestep, embeds, mask, feature_blocks=…,
    feature_heads=…)``, with classifier-free guidance when the scale is not 1: the conditional and the
    unconditional (``null_condition``) halves run as one batch of 2b, and the features are the
    conditional half's."""
    sigma = sigma.to(x.dtype).reshape(-1)
    timestep = parameterization.model_timestep(sigma)
    guided = guidance_scale != 1.0
    if guided:
        x_in, t_in = torch.cat([x, x]), torch.cat([timestep, timestep])
        embeds = torch.cat([condition.embeds, null_condition.embeds.to(condition.embeds)])
        mask = torch.cat([condition.mask, null_condition.mask.to(condition.mask.device)])
    else:
        x_in, t_in, embeds, mask = x, timestep, condition.embeds, condition.mask
    out = network(
        x_in, t_in, embeds, mask, feature_blocks=feature_blocks, feature_heads=feature_heads, **network_kwargs
    )
    output, features, heads = unpack_network_output(out, feature_blocks)
    if guided:
        conditional, unconditional = output.chunk(2)
        output = classifier_free_guidance(conditional, unconditional, guidance_scale)
        features, heads = [f.chunk(2)[0] for f in features], [h.chunk(2)[0] for h in heads]
    x0, eps = parameterization.to_x0_eps(x, sigma.view(-1, 1, 1, 1, 1), output)
    return Prediction(x0=x0, eps=eps, features=features, head_features=heads)


def trainable_copy(teacher: nn.Module) -> nn.Module:
    """A student made from an adapter: a shallow copy whose network is a deep, trainable copy in
    float32 (the master weights: a bf16 teacher's copy could not hold lr-1e-6 updates; bf16 compute
    comes from mixed precision), with classifier-free guidance off (distilled into the student: one
    forward per step). Whatever else the adapter holds (text encoders, VAE, negative embeddings) is
    shared, not copied."""
    student = copy.copy(teacher)
    student.__dict__["_modules"] = dict(teacher._modules)
    student.__dict__["_buffers"] = dict(teacher._buffers)
    student.network = copy.deepcopy(teacher.network).float().requires_grad_(True).train()
    student.guidance_scale = 1.0
    return student


def module_fingerprint(module: nn.Module) -> str:
    """sha256 over a network's parameter names, shapes and values: the teacher's identity."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
