"""The one interface every teacher adapter implements (DESIGN.md §2 "Noise convention")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import Tensor

from dcm_lightning.diffusion import Parameterization


@dataclass
class Prediction:
    """A teacher's (or student's) answer at noise level σ."""

    x0: Tensor  # b c f h w
    eps: Tensor  # b c f h w
    features: list[Tensor] = field(default_factory=list)  # per requested block: b n d


class VideoTeacher(Protocol):
    """What samplers, caches and the distillation losses may rely on."""

    parameterization: Parameterization
    num_steps: int
    shift: float
    guidance_scale: float
    psi_modules: tuple[str, ...]  # top-level timestep-dependent layers the detail expert copies (Ψ)

    def encode_prompts(self, prompts: Sequence[str]) -> Any: ...

    def latent_shape(self) -> tuple[int, int, int, int]: ...

    def predict(
        self,
        x: Tensor,
        sigma: Tensor,
        condition: Any,
        guidance_scale: float | None = None,
        feature_blocks: Sequence[int] = (),
    ) -> Prediction: ...

    def decode(self, latents: Tensor) -> Tensor: ...
