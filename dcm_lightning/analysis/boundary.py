"""Where a teacher's trajectories settle their semantics: a data-driven expert boundary κ.

The paper sets κ by hand (37 of 50) and names that a limitation. Here κ comes from the teacher's own
cached trajectories. Each DDIM step x_n → x_{n−1} used one prediction (x̂0, ε̂) for both states
(x_n = a_n·x̂0 + b_n·ε̂, x_{n−1} = a_{n−1}·x̂0 + b_{n−1}·ε̂), so the cache gives every step's clean
estimate without a teacher call (``clean_estimate``). Along the trajectory we measure how far that
estimate is from where the trajectory ends: the relative latent distance, and — for a teacher with
an oracle (MovingShapes) — whether all four attributes of the decoded estimate already equal the
final sample's. The semantic expert should own the steps where this is still being decided; the
suggested κ is the highest grid index at and below which the estimates already agree with the end
(attribute agreement ≥ a threshold, or without an oracle the latent distance ≤ one).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from dcm_lightning.data.trajectory_cache import TrajectoryCache
from dcm_lightning.diffusion import sigma_at, validate_boundary_index
from dcm_lightning.diffusion.phases import CLEAN_INDEX
from dcm_lightning.errors import UserError


def clean_estimate(x_n: Tensor, x_prev: Tensor, coefficients_n: tuple, coefficients_prev: tuple) -> Tensor:
    """The x̂0 of the DDIM step x_n → x_{n−1}: (b_n·x_{n−1} − b_{n−1}·x_n) / (b_n·a_{n−1} − b_{n−1}·a_n)."""
    (a_n, b_n), (a_p, b_p) = coefficients_n, coefficients_prev
    return (b_n * x_prev - b_p * x_n) / (b_n * a_p - b_p * a_n)


@dataclass
class BoundaryCurves:
    """Per grid index n (descending): σ_n, the mean relative distance ‖x̂0(n) − x_end‖ / ‖x_end‖, and
    (oracle teachers) the fraction of trajectories whose decoded x̂0(n) has all four attributes of
    the decoded end state."""

    indices: list[int]
    sigmas: list[float]
    latent_distance: list[float]
    attribute_agreement: list[float] | None
    num_samples: int

    def to_json(self) -> dict:
        return dict(self.__dict__)


def boundary_curves(cache: TrajectoryCache, teacher, num_samples: int, progress: bool = True) -> BoundaryCurves:
    """The curves over the first ``num_samples`` trajectories of ``cache`` (every grid state kept)."""
    spec = cache.spec
    indices = list(range(spec.num_steps - 1, -1, -1))
    needed = set(indices) | {CLEAN_INDEX}
    if not needed <= set(spec.kept_indices):
        raise UserError(
            "the boundary analysis needs every state of the trajectories; use a cache with kept_indices: null."
        )
    num_samples = min(num_samples, spec.num_samples)
    sigmas = teacher.sigmas().double()
    parameterization = teacher.parameterization
    coefficients = {n: parameterization.coefficients(sigma_at(n, sigmas)) for n in [*indices, CLEAN_INDEX]}
    oracle = getattr(teacher, "spec", None)
    distance = torch.zeros(len(indices), dtype=torch.float64)
    agreement = torch.zeros(len(indices), dtype=torch.float64)
    for sample in tqdm(range(num_samples), desc="trajectories", disable=not progress):
        states = cache.read_sample(sample, [*indices, CLEAN_INDEX])["states"].double()  # N+1 c f h w
        end = states[-1]
        end_attributes = _attributes(teacher, end, oracle) if oracle is not None else None
        for position, n in enumerate(indices):
            estimate = clean_estimate(states[position], states[position + 1], coefficients[n], coefficients[n - 1])
            distance[position] += float((estimate - end).norm() / end.norm().clamp_min(1e-12))
            if oracle is not None:
                agreement[position] += _attributes(teacher, estimate, oracle) == end_attributes
    return BoundaryCurves(
        indices=indices,
        sigmas=[float(sigma_at(n, sigmas)) for n in indices],
        latent_distance=(distance / num_samples).tolist(),
        attribute_agreement=(agreement / num_samples).tolist() if oracle is not None else None,
        num_samples=num_samples,
    )


def _attributes(teacher, latent: Tensor, oracle) -> tuple:
    from dcm_lightning.moving_shapes import analyze_clip

    analysis = analyze_clip(teacher.decode(latent.float().unsqueeze(0))[0], oracle)
    return (analysis.shape, analysis.color, analysis.texture, analysis.direction)


def moving_average(values: list[float], window: int) -> list[float]:
    """Centered moving average (the window shrinks at the ends)."""
    half = window // 2
    return [
        sum(values[max(0, i - half) : i + half + 1]) / len(values[max(0, i - half) : i + half + 1])
        for i in range(len(values))
    ]


def suggest_boundary(
    curves: BoundaryCurves, threshold: float = 0.9, max_distance: float = 0.25, window: int = 5
) -> int:
    """The highest grid index κ such that at κ and every lower index the estimates already agree with
    the end — attribute agreement ≥ ``threshold`` (oracle teachers) or latent distance ≤
    ``max_distance`` — kept inside the grid (0 < κ < N − 1). The curves are first averaged over
    ``window`` neighbouring indices: a fraction over a few dozen trajectories is noisy by a few
    percent, and one unlucky index should not move κ."""
    if curves.attribute_agreement is not None:
        settled = [value >= threshold for value in moving_average(curves.attribute_agreement, window)]
    else:
        settled = [value <= max_distance for value in moving_average(curves.latent_distance, window)]
    kappa = 0
    for n, ok in sorted(zip(curves.indices, settled, strict=True)):  # ascending: from the clean end
        if not ok:
            break
        kappa = n
    num_steps = len(curves.indices)
    return validate_boundary_index(min(max(kappa, 1), num_steps - 2), num_steps)


def boundary_figure(curves: BoundaryCurves, kappa: int, default_kappa: int | None = None):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.6), constrained_layout=True)
    axis.plot(curves.indices, curves.latent_distance, label="‖x̂0(n) − x_end‖ / ‖x_end‖", color="tab:blue")
    axis.set_xlabel("grid index n (σ rises to the right)")
    axis.set_ylabel("relative latent distance", color="tab:blue")
    if curves.attribute_agreement is not None:
        twin = axis.twinx()
        twin.plot(curves.indices, curves.attribute_agreement, label="all-four attribute agreement", color="tab:green")
        twin.set_ylabel("attributes of x̂0(n) = end's", color="tab:green")
        twin.set_ylim(-0.02, 1.02)
    axis.axvline(kappa, color="tab:red", linestyle="--", label=f"suggested κ = {kappa}")
    if default_kappa is not None:
        axis.axvline(default_kappa, color="gray", linestyle=":", label=f"default κ = {default_kappa}")
    axis.legend(loc="upper left", fontsize=8)
    axis.grid(alpha=0.3)
    return figure
