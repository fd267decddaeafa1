"""Which grid points an expert owns and where each of its phases ends (docs/design.md §2).

Grid indices follow the paper: i ∈ {0..N−1} is σ_i = σ((i + 1) / N), and index −1 stands for the
appended σ = 0. An expert owns the samples at indices ``first..last`` (inclusive) and integrates
them down to ``end``; PCM-style phases split that range so that every phase has its own end.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from dcm_lightning.diffusion.grids import validate_boundary_index
from dcm_lightning.errors import UserError

CLEAN_INDEX = -1  # the appended σ = 0


@dataclass(frozen=True)
class Segment:
    """Grid points ``end + 1 .. last`` are sampled; every trajectory ends at index ``end``. Phases
    split the range evenly, or at ``inner_ends`` when given (then ``num_phases`` = their count + 1)."""

    end: int
    last: int
    num_phases: int = 1
    inner_ends: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.last <= self.end:
            raise UserError(f"an expert segment needs last > end, got end={self.end}, last={self.last}.")
        if self.inner_ends and (
            self.num_phases != len(self.inner_ends) + 1 or not all(self.end < e < self.last for e in self.inner_ends)
        ):
            raise UserError(
                f"phase ends {list(self.inner_ends)} must lie inside ({self.end}, {self.last}), one per phase."
            )
        if not 1 <= self.num_phases <= self.last - self.end:
            raise UserError(
                f"{self.num_phases} phases do not fit {self.last - self.end} grid steps; use 1..{self.last - self.end}."
            )

    def phase_ends(self) -> list[int]:
        """Phase end indices, from the segment's end upwards: P nearly equal runs of grid steps, or
        the given inner ends."""
        if self.inner_ends:
            return [self.end, *sorted(self.inner_ends)]
        steps = self.last - self.end
        return [self.end + (steps * p) // self.num_phases for p in range(self.num_phases)]

    def phase_end(self, index: int) -> int:
        """The end of the phase that grid point ``index`` (end < index ≤ last) belongs to."""
        if not self.end < index <= self.last:
            raise ValueError(f"grid index {index} is outside the segment ({self.end}, {self.last}]")
        return max(e for e in self.phase_ends() if e < index)

    def sample_indices(self) -> range:
        return range(self.end + 1, self.last + 1)


def semantic_segment(kappa: int, num_steps: int, num_phases: int = 1) -> Segment:
    """SemE: samples on (σ_b, 1], i.e. indices κ+1..N−1, ending at σ_κ = σ_b."""
    validate_boundary_index(kappa, num_steps)
    return Segment(end=kappa, last=num_steps - 1, num_phases=num_phases)


def detail_segment(kappa: int, num_steps: int, num_phases: int = 1) -> Segment:
    """DetE: samples on [σ_0, σ_b], i.e. indices 0..κ, integrating to the appended σ = 0."""
    validate_boundary_index(kappa, num_steps)
    return Segment(end=CLEAN_INDEX, last=kappa, num_phases=num_phases)


def whole_trajectory(num_steps: int, num_phases: int = 1) -> Segment:
    """LCM (P = 1) and PCM (P phases): one model over every grid point, ending at σ = 0."""
    return Segment(end=CLEAN_INDEX, last=num_steps - 1, num_phases=num_phases)


def split_trajectory(kappa: int, num_steps: int) -> Segment:
    """The ablation's VCM: one model over every grid point, with DCM's two phases — (σ_b, 1] ending at
    σ_b and [0, σ_b] ending at σ = 0 — so that only the decoupling into two experts is missing."""
    validate_boundary_index(kappa, num_steps)
    return Segment(end=CLEAN_INDEX, last=num_steps - 1, num_phases=2, inner_ends=(kappa,))


def uniform_step_indices(segment: Segment, num_steps: int) -> list[int]:
    """Grid indices a ``num_steps`` sampler visits inside a segment: its last point, then uniform
    strides in index towards its end (official 2 + 2 at κ = 37: 49, 43 | 37, 18 → σ = 0)."""
    if not 1 <= num_steps <= segment.last - segment.end:
        raise UserError(f"{num_steps} steps do not fit {segment.last - segment.end} grid steps of this expert.")
    span = segment.last - segment.end
    return [segment.last - (j * span) // num_steps for j in range(num_steps)]


def phase_start_indices(segment: Segment) -> list[int]:
    """The P-step schedule of a phased student: it starts each phase where the previous one ended."""
    ends = segment.phase_ends()
    return [segment.last, *reversed(ends[1:])]


def phased_step_indices(segment: Segment, num_steps: int) -> list[int]:
    """A single-model student's schedule: one step per phase when the step count equals P (PCM's
    sampler), otherwise uniform strides over the segment (LCM's multistep sampler, made deterministic)."""
    if num_steps == segment.num_phases:
        return phase_start_indices(segment)
    return uniform_step_indices(segment, num_steps)


def dual_expert_step_indices(kappa: int, grid_steps: int, semantic_steps: int, detail_steps: int) -> list[int]:
    """DCM's schedule: uniform within each expert's range, semantic steps first (docs/design.md §2
    "Sampling"; official Hunyuan 2 + 2 at κ = 37 visits indices 49, 43 | 37, 18, then σ = 0)."""
    return uniform_step_indices(semantic_segment(kappa, grid_steps), semantic_steps) + uniform_step_indices(
        detail_segment(kappa, grid_steps), detail_steps
    )


@dataclass(frozen=True)
class Schedule:
    """How a student places its sampling steps on the teacher's grid; saved with an export, so a
    training module and an exported student sample the same grid points.

    Args:
        rule: "dual_expert" (SemE / DCM / VCM: half the steps on each side of κ) or "phased" (LCM / PCM).
        boundary_index: κ, for "dual_expert": the only place an exported student keeps it.
        num_phases: P, for "phased".
    """

    rule: Literal["dual_expert", "phased"]
    boundary_index: int | None = None
    num_phases: int | None = None

    def __post_init__(self) -> None:
        if self.rule not in ("dual_expert", "phased"):
            raise UserError(f"unknown sampling schedule {self.rule!r}.")

    @classmethod
    def dual_expert(cls, boundary_index: int) -> Schedule:
        return cls("dual_expert", boundary_index=boundary_index)

    @classmethod
    def phased(cls, num_phases: int) -> Schedule:
        return cls("phased", num_phases=num_phases)

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, values: dict) -> Schedule:
        return cls(**values)

    def indices(self, grid_steps: int, num_steps: int) -> list[int]:
        """The grid indices a ``num_steps`` sampler visits (then σ = 0)."""
        if self.rule == "dual_expert":
            if num_steps < 2:
                raise UserError(f"a dual-expert schedule needs at least 2 steps (one per expert), got {num_steps}.")
            semantic = num_steps // 2
            return dual_expert_step_indices(self.boundary_index, grid_steps, semantic, num_steps - semantic)
        return phased_step_indices(whole_trajectory(grid_steps, self.num_phases), num_steps)
