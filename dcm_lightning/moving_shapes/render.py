"""Seeded, deterministic renderer: one anti-aliased shape moving in a straight line on a plain background."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dcm_lightning.errors import UserError
from dcm_lightning.moving_shapes.vocabulary import COLORS, DIRECTIONS, ShapeAttributes

EDGE_MARGIN = 1.0  # pixels kept free between the shape and the frame border


@dataclass(frozen=True)
class MovingShapesSpec:
    """Geometry of a clip. Sizes are in output pixels; the renderer supersamples for anti-aliasing."""

    frames: int = 8
    height: int = 32
    width: int = 32
    shape_size: tuple[float, float] = (14.0, 18.0)  # bounding-box side, drawn per clip
    speed: tuple[float, float] = (0.75, 1.5)  # pixels per frame, drawn per clip
    stripe_period: float = 4.0  # the fine pattern: diagonal stripes of this period
    stripe_darkness: float = 0.4  # dark stripes are the base color times this
    background: tuple[float, float, float] = (0.06, 0.06, 0.06)
    supersample: int = 4

    def __post_init__(self) -> None:
        if self.frames < 8 or self.height < 32 or self.width < 32:
            raise UserError("MovingShapes clips need at least 8 frames of 32×32 pixels.")
        travel = self.speed[1] * (self.frames - 1) + self.shape_size[1] + 2 * EDGE_MARGIN
        if travel > min(self.height, self.width):
            raise UserError(
                f"a shape of size {self.shape_size[1]} at speed {self.speed[1]} leaves a "
                f"{self.height}×{self.width} frame within {self.frames} frames; lower speed or size."
            )


def spec_from_dict(values: dict) -> MovingShapesSpec:
    """Inverse of ``dataclasses.asdict`` (JSON and checkpoints turn tuples into lists)."""
    return MovingShapesSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


@dataclass(frozen=True)
class Motion:
    """The per-sample randomness: where the shape starts, how fast it moves, how big it is."""

    start_x: float
    start_y: float
    speed: float
    size: float


def sample_motion(attributes: ShapeAttributes, spec: MovingShapesSpec, generator: torch.Generator) -> Motion:
    """Draw size, speed and a start so that the whole shape stays inside the frame on every frame."""
    u = torch.rand(4, generator=generator, dtype=torch.float64).tolist()
    size = spec.shape_size[0] + u[0] * (spec.shape_size[1] - spec.shape_size[0])
    speed = spec.speed[0] + u[1] * (spec.speed[1] - spec.speed[0])
    dx, dy = DIRECTIONS[attributes.direction]
    travel = speed * (spec.frames - 1)
    half = size / 2 + EDGE_MARGIN

    def start(extent: int, direction: int, draw: float) -> float:
        low, high = half, extent - half
        if direction > 0:
            high -= travel
        elif direction < 0:
            low += travel
        return low + draw * (high - low)

    return Motion(start(spec.width, dx, u[2]), start(spec.height, dy, u[3]), speed, size)


def shape_mask(shape: str, u: Tensor, v: Tensor, half: float) -> Tensor:
    """Point-in-shape test in shape-centred coordinates (u right, v down), bounding box side 2·half."""
    if shape == "circle":
        return u.square() + v.square() <= half**2
    if shape == "square":
        return (u.abs() <= half) & (v.abs() <= half)
    # Isosceles triangle pointing up: apex (0, −half), base from (−half, half) to (half, half).
    return (v <= half) & (u.abs() <= (v + half) / 2)


def render_clip(attributes: ShapeAttributes, motion: Motion, spec: MovingShapesSpec) -> Tensor:
    """Render one clip as ``c f h w`` RGB in [0, 1]."""
    s = spec.supersample
    dx, dy = DIRECTIONS[attributes.direction]
    t = torch.arange(spec.frames, dtype=torch.float64).view(-1, 1, 1)
    # Supersampled pixel centres in output-pixel units: f (h·s) (w·s).
    ys = ((torch.arange(spec.height * s, dtype=torch.float64) + 0.5) / s).view(1, -1, 1)
    xs = ((torch.arange(spec.width * s, dtype=torch.float64) + 0.5) / s).view(1, 1, -1)
    u = xs - (motion.start_x + dx * motion.speed * t)
    v = ys - (motion.start_y + dy * motion.speed * t)
    inside = shape_mask(attributes.shape, u, v, motion.size / 2)
    color = torch.tensor(COLORS[attributes.color], dtype=torch.float64).view(3, 1, 1, 1)
    shade = torch.ones_like(u)
    if attributes.texture == "striped":
        # Stripes move with the shape: their phase is measured in shape-centred coordinates.
        phase = torch.remainder((u + v) / spec.stripe_period, 1.0)
        shade = torch.where(phase < 0.5, 1.0, spec.stripe_darkness)
    background = torch.tensor(spec.background, dtype=torch.float64).view(3, 1, 1, 1)
    fine = torch.where(inside.unsqueeze(0), color * shade.unsqueeze(0), background)  # c f (h s) (w s)
    video = torch.nn.functional.avg_pool2d(fine, kernel_size=s)  # c f h w
    return video.float()


def render_sample(attributes: ShapeAttributes, seed: int, spec: MovingShapesSpec) -> tuple[Tensor, Motion]:
    """Render the clip that ``seed`` draws for ``attributes``; the same inputs give the same pixels."""
    generator = torch.Generator().manual_seed(seed)
    motion = sample_motion(attributes, spec, generator)
    return render_clip(attributes, motion, spec), motion


__all__ = [
    "Motion",
    "MovingShapesSpec",
    "render_clip",
    "render_sample",
    "sample_motion",
    "shape_mask",
    "spec_from_dict",
]
