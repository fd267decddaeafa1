"""Samplers: deterministic jumps over a σ schedule (grids in, samples out)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from dcm_lightning.diffusion import ddim_jump, sigma_at
from dcm_lightning.diffusion.phases import CLEAN_INDEX
from dcm_lightning.teachers.base import VideoTeacher


@torch.no_grad()
def teacher_trajectory(
    teacher: VideoTeacher,
    noise: Tensor,
    condition: Any,
    sigmas: Tensor | None = None,
    guidance_scale: float | None = None,
    progress: bool = False,
) -> Iterator[Tensor]:
    """Integrate the teacher's probability-flow ODE from ``noise`` (b c f h w at σ = sigmas[0]),
    yielding the state at every level of ``sigmas``, the noise first and the sample last.

    Each step is one DDIM jump x_s = a_s·x̂0 + b_s·ε̂ from σ_i to σ_{i+1}; with the default schedule
    (``teacher.sigmas()``, N + 1 levels ending at 0) this is the teacher's N-step sampler.
    """
    sigmas = (teacher.sigmas() if sigmas is None else sigmas).to(noise.device, noise.dtype)
    x = noise
    yield x
    for i in tqdm(range(len(sigmas) - 1), desc="teacher sampling", disable=not progress, leave=False):
        sigma = sigmas[i].expand(x.shape[0])
        prediction = teacher.predict(x, sigma, condition, guidance_scale=guidance_scale)
        a, b = teacher.parameterization.coefficients(sigmas[i + 1])
        x = ddim_jump(prediction.x0, prediction.eps, a, b)
        yield x


def sample_teacher(
    teacher: VideoTeacher,
    noise: Tensor,
    condition: Any,
    sigmas: Tensor | None = None,
    guidance_scale: float | None = None,
    progress: bool = False,
) -> Tensor:
    """The teacher's sample: the last state of ``teacher_trajectory``."""
    *_, sample = teacher_trajectory(teacher, noise, condition, sigmas, guidance_scale, progress)
    return sample


def sample_few_step(
    student: VideoTeacher, noise: Tensor, condition: Any, indices: Sequence[int], progress: bool = False
) -> Tensor:
    """A consistency student's sample: deterministic jumps through the grid points ``indices``
    (descending, the first at σ = 1), then to σ = 0. Guidance is distilled into the student, so each
    step is one conditional forward."""
    levels = torch.tensor([*indices, CLEAN_INDEX])
    sigmas = sigma_at(levels, student.sigmas())
    return sample_teacher(student, noise, condition, sigmas, guidance_scale=1.0, progress=progress)


def seeded_noise(seeds: list[int], shape: tuple[int, ...]) -> Tensor:
    """One standard-normal sample per seed (b, *shape): the same seed gives the same noise everywhere."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])
