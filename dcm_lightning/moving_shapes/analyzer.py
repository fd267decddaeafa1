"""The oracle: recovers mask, color, shape, texture and centroid track of a MovingShapes clip exactly
enough to score generated videos without any learned network (docs/design.md §4)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from dcm_lightning.moving_shapes.render import MovingShapesSpec, shape_mask
from dcm_lightning.moving_shapes.vocabulary import COLORS, DIRECTIONS, SHAPES, ShapeAttributes

MIN_SHAPE_PIXELS = 6
# Shape = the best-fitting template drawn into the mask's bounding box, if it fits well enough.
MIN_SHAPE_IOU = 0.6
TEMPLATE_SUPERSAMPLE = 4
TEMPLATE_COVERAGE = 0.25  # a pixel belongs to a template when the shape covers this much of it
TEMPLATE_INSET = 0.3  # the mask's box includes partly covered edge pixels; the shape is a bit smaller
# Fraction of interior pixels much darker than the shape's bright color: ≈ 0 plain, ≈ 0.4 striped.
STRIPED_MIN_DARK_FRACTION = 0.12
MIN_TRAVEL_PIXELS = 2.0


@dataclass
class ClipAnalysis:
    """What the oracle read off one clip; attribute fields are None where no shape was found."""

    shape: str | None
    color: str | None
    texture: str | None
    direction: str | None
    masks: Tensor  # f h w, bool
    centroids: Tensor  # f 2 (x, y) in pixels; NaN on frames without a shape
    frame_shapes: list[str | None] = field(default_factory=list)
    frame_colors: list[str | None] = field(default_factory=list)
    frame_textures: list[str | None] = field(default_factory=list)

    @property
    def track_residual(self) -> float:
        """RMS distance (pixels) of the centroid track from its best straight constant-speed line."""
        valid = ~self.centroids.isnan().any(dim=1)
        if valid.sum() < 3:
            return float("nan")
        t = torch.arange(len(self.centroids), dtype=torch.float64)[valid]
        design = torch.stack([torch.ones_like(t), t], dim=1)
        points = self.centroids[valid].double()
        solution = torch.linalg.lstsq(design, points).solution
        return float((design @ solution - points).square().sum(dim=1).mean().sqrt())

    def matches(self, attributes: ShapeAttributes) -> dict[str, bool]:
        return {
            "shape": self.shape == attributes.shape,
            "color": self.color == attributes.color,
            "texture": self.texture == attributes.texture,
            "direction": self.direction == attributes.direction,
        }


def largest_component(mask: Tensor) -> Tensor:
    """Keep the largest 8-connected region of an ``h w`` mask, so stray pixels of a generated frame
    neither move the centroid nor stretch the bounding box the shape is judged by."""
    height, width = mask.shape
    labels = torch.arange(1, height * width + 1, dtype=torch.float32).view(1, 1, height, width) * mask
    while True:
        grown = F.max_pool2d(labels, 3, stride=1, padding=1) * mask
        if torch.equal(grown, labels):
            break
        labels = grown
    values, counts = labels[labels > 0].unique(return_counts=True)
    if len(values) == 0:
        return mask
    return labels[0, 0] == values[counts.argmax()]


def _mask_threshold(spec: MovingShapesSpec) -> float:
    # Midway between the background and the darkest stripe of the dimmest color.
    dimmest = min(max(rgb) for rgb in COLORS.values()) * spec.stripe_darkness
    return (max(spec.background) + dimmest) / 2


def _shape_ious(mask: Tensor) -> dict[str, float]:
    """IoU of the mask with each shape drawn into the mask's own bounding box."""
    rows = mask.any(dim=1).nonzero().squeeze(1)
    cols = mask.any(dim=0).nonzero().squeeze(1)
    centre_x = (float(cols[0]) + float(cols[-1]) + 1) / 2
    centre_y = (float(rows[0]) + float(rows[-1]) + 1) / 2
    half = (max(float(rows[-1] - rows[0]), float(cols[-1] - cols[0])) + 1) / 2 - TEMPLATE_INSET
    s = TEMPLATE_SUPERSAMPLE
    height, width = mask.shape
    v = ((torch.arange(height * s, dtype=torch.float64) + 0.5) / s - centre_y).view(-1, 1)
    u = ((torch.arange(width * s, dtype=torch.float64) + 0.5) / s - centre_x).view(1, -1)
    ious = {}
    for shape in SHAPES:
        coverage = F.avg_pool2d(shape_mask(shape, u, v, half).double()[None, None], s)[0, 0]
        template = coverage > TEMPLATE_COVERAGE
        ious[shape] = float((template & mask).sum()) / float((template | mask).sum())
    return ious


def _classify_shape(mask: Tensor) -> str | None:
    """The shape whose template fits best; None when none fits (a blob is no shape)."""
    ious = _shape_ious(mask)
    best = max(ious, key=ious.get)
    return best if ious[best] >= MIN_SHAPE_IOU else None


def bright_region(frame: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-pixel brightness (h w), the shape's bright level (its 90th percentile inside ``mask``) and
    the mask of the shape's bright pixels (the base color, without stripes) of one ``c h w`` frame."""
    brightness = frame.amax(dim=0)  # h w
    bright_level = torch.quantile(brightness[mask], 0.9)
    return brightness, bright_level, mask & (brightness >= 0.8 * bright_level)


def _classify_color_texture(frame: Tensor, mask: Tensor) -> tuple[str, str]:
    brightness, bright_level, bright = bright_region(frame, mask)
    rgb = frame[:, bright].mean(dim=1)
    rgb = rgb / rgb.max().clamp_min(1e-6)
    palette = {name: torch.tensor(c) / max(c) for name, c in COLORS.items()}
    color = min(palette, key=lambda name: float((palette[name] - rgb).square().sum()))
    # Interior only: edge pixels are partly background and would look "dark" on plain shapes.
    interior = (-F.max_pool2d(-mask.float()[None, None], 3, stride=1, padding=1))[0, 0].bool()
    region = interior if interior.sum() >= MIN_SHAPE_PIXELS else mask
    dark_fraction = float((brightness[region] < 0.7 * bright_level).float().mean())
    return color, "striped" if dark_fraction >= STRIPED_MIN_DARK_FRACTION else "plain"


def _majority(votes: list[str | None]) -> str | None:
    counted = Counter(v for v in votes if v is not None)
    return counted.most_common(1)[0][0] if counted else None


def track_travel(centroids: Tensor) -> Tensor | None:
    """(x, y) pixels the least-squares constant-velocity fit of a centroid track covers over the
    clip; None with fewer than two frames showing a shape."""
    valid = ~centroids.isnan().any(dim=1)
    if valid.sum() < 2:
        return None
    t = torch.arange(len(centroids), dtype=centroids.dtype)[valid]
    points = centroids[valid]
    t_centered = t - t.mean()
    velocity = (t_centered[:, None] * (points - points.mean(dim=0))).sum(dim=0) / t_centered.square().sum()
    return velocity * (len(centroids) - 1)


def _direction(centroids: Tensor) -> str | None:
    travel = track_travel(centroids)
    if travel is None or float(travel.abs().max()) < MIN_TRAVEL_PIXELS:
        return None
    axis = int(travel.abs().argmax())
    sign = 1 if travel[axis] > 0 else -1
    return next(name for name, d in DIRECTIONS.items() if d[axis] == sign)


def analyze_clip(video: Tensor, spec: MovingShapesSpec | None = None) -> ClipAnalysis:
    """Analyze one ``c f h w`` clip with values in [0, 1] (clamp generated videos first)."""
    spec = spec or MovingShapesSpec()
    video = video.detach().float().cpu().clamp(0, 1)
    masks = video.amax(dim=0) > _mask_threshold(spec)  # f h w
    ys, xs = torch.meshgrid(
        torch.arange(video.shape[2], dtype=torch.float32) + 0.5,
        torch.arange(video.shape[3], dtype=torch.float32) + 0.5,
        indexing="ij",
    )
    centroids = torch.full((video.shape[1], 2), float("nan"))
    shapes: list[str | None] = []
    colors: list[str | None] = []
    textures: list[str | None] = []
    masks = torch.stack([largest_component(mask) for mask in masks])
    for f, mask in enumerate(masks):
        if mask.sum() < MIN_SHAPE_PIXELS:
            shapes.append(None)
            colors.append(None)
            textures.append(None)
            continue
        centroids[f] = torch.stack([xs[mask].mean(), ys[mask].mean()])
        shapes.append(_classify_shape(mask))
        color, texture = _classify_color_texture(video[:, f], mask)
        colors.append(color)
        textures.append(texture)
    return ClipAnalysis(
        shape=_majority(shapes),
        color=_majority(colors),
        texture=_majority(textures),
        direction=_direction(centroids),
        masks=masks,
        centroids=centroids,
        frame_shapes=shapes,
        frame_colors=colors,
        frame_textures=textures,
    )
