"""Samplers: deterministic jumps over a σ list (grids in, samples out).

Like k-diffusion's samplers, ``ode_trajectory`` and ``sample`` take a bare denoiser
``(x, σ) → (x̂0, ε̂)``, the parameterization that turns σ into (a, b) and the σ list; which model
answers, and with which guidance or expert, is the denoiser's business. ``denoiser`` makes one of
any teacher or student (anything with the teacher interface's ``predict``); a ``Sampler`` bundles a
model with its σ list, guidance and expert boundary, ready to generate.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from dcm_lightning.diffusion import Parameterization, ddim_jump, sigma_at
from dcm_lightning.diffusion.consistency import Denoiser
from dcm_lightning.diffusion.phases import CLEAN_INDEX, Schedule
from dcm_lightning.experts import DualExpertNetwork, expert_at


def denoiser(model, condition: Any, guidance_scale: float | None = None, **network_kwargs) -> Denoiser:
    """The (x, σ) → (x̂0, ε̂) view of a teacher or student (a ``teachers.base.VideoModel``) for
    ``condition``; ``network_kwargs`` reach the network (a dual-expert student's ``expert``)."""

    def denoise(x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        prediction = model.predict(x, sigma, condition, guidance_scale=guidance_scale, **network_kwargs)
        return prediction.x0, prediction.eps

    return denoise


@torch.no_grad()
def ode_trajectory(
    denoiser: Denoiser, parameterization: Parameterization, x: Tensor, sigmas: Tensor, progress: bool = False
) -> Iterator[Tensor]:
    """Integrate the probability-flow ODE from ``x`` (b c f h w at σ = sigmas[0]), yielding the state
    at every level of ``sigmas``, the start first and the sample last.

    Each step is one DDIM jump x_s = a_s·x̂0 + b_s·ε̂ from σ_i to σ_{i+1}; over a teacher's own
    ``sigmas()`` (N + 1 levels ending at 0) this is its N-step sampler, over a student's few grid
    points (then 0) it is the consistency sampler.
    """
    sigmas = sigmas.to(x.device, x.dtype)
    yield x
    for i in tqdm(range(len(sigmas) - 1), desc="sampling", disable=not progress, leave=False):
        x0, eps = denoiser(x, sigmas[i].expand(x.shape[0]))
        a, b = parameterization.coefficients(sigmas[i + 1])
        x = ddim_jump(x0, eps, a, b)
        yield x


def sample(
    denoiser: Denoiser, parameterization: Parameterization, x: Tensor, sigmas: Tensor, progress: bool = False
) -> Tensor:
    """The last state of ``ode_trajectory``: the sample."""
    *_, last = ode_trajectory(denoiser, parameterization, x, sigmas, progress)
    return last


def seeded_noise(seeds: list[int], shape: tuple[int, ...]) -> Tensor:
    """One standard-normal sample per seed (b, *shape): the same seed gives the same noise everywhere."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


@dataclass
class Sampler:
    """What generation needs: the model, its σ list (ending at 0), its guidance scale and, for a
    dual-expert student, σ_b (each step goes to the expert that owns its σ)."""

    model: Any  # a teachers.base.VideoModel
    sigmas: Tensor
    guidance_scale: float
    kind: str  # "teacher" or "student"
    boundary_sigma: float | None = None

    @property
    def steps(self) -> int:
        return len(self.sigmas) - 1

    def denoiser(self, condition: Any) -> Denoiser:
        if self.boundary_sigma is None:
            return denoiser(self.model, condition, self.guidance_scale)
        scale = self.guidance_scale
        experts = {name: denoiser(self.model, condition, scale, expert=name) for name in ("semantic", "detail")}
        return lambda x, sigma: experts[expert_at(sigma[0], self.boundary_sigma)](x, sigma)

    def latents(self, noise: Tensor, condition: Any, progress: bool = False) -> Tensor:
        return sample(self.denoiser(condition), self.model.parameterization, noise, self.sigmas, progress)

    def videos(self, prompts: Sequence[str], seeds: Sequence[int], open_vocabulary: bool = False) -> Tensor:
        """Decoded videos (b c f h w in [0, 1], on the model's device) of ``prompts``, each from the
        seeded noise of its seed: the same prompt and seed give the same video for every model."""
        model = self.model
        noise = seeded_noise(list(seeds), model.latent_shape()).to(model.device)
        condition = model.encode_prompts(list(prompts), open_vocabulary=open_vocabulary)
        return model.decode(self.latents(noise, condition))


def teacher_sampler(teacher, steps: int | None = None, guidance_scale: float | None = None) -> Sampler:
    """A teacher on its own grid (or a ``steps``-step one) with its own guidance unless one is given."""
    scale = teacher.guidance_scale if guidance_scale is None else guidance_scale
    return Sampler(teacher, teacher.sigmas(steps), scale, "teacher")


def student_sampler(student, schedule: Schedule, steps: int) -> Sampler:
    """A student on its own schedule: ``steps`` grid points, then σ = 0; routed at κ when it has two experts."""
    grid = student.sigmas()
    sigmas = sigma_at(torch.tensor([*schedule.indices(student.num_steps, steps), CLEAN_INDEX]), grid)
    boundary = None
    if isinstance(student.network, DualExpertNetwork):
        boundary = float(sigma_at(schedule.boundary_index, grid))
    return Sampler(student, sigmas, 1.0, "student", boundary)
