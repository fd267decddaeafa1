"""MiniBench: VBench's structure on MovingShapes, every dimension measured exactly by the oracle.

Each dimension is a score in [0, 1] per video, averaged over videos (dynamic degree: the fraction of
videos that move). As in VBench, Quality is the weighted mean of the quality dimensions (dynamic
degree weighs 0.5, the others 1), Semantic the mean of the semantic ones, and
Total = (4·Quality + Semantic) / 5. VBench min–max normalizes its raw scores first; MiniBench's are
in [0, 1] by construction and a clean render scores (near) 1 on each, so no normalization is applied.
The clean renders of the suite's prompts are scored alongside the models (the ``data`` row), which
shows each dimension's ceiling.

Quality dimensions (one consecutive-frame pair at a time, averaged over pairs):
  subject_consistency     IoU of the two frames' shape masks aligned on their centroids (integer
                          shift), 0 where either frame lost the shape or its shape/color/texture
                          label changed between them.
  background_consistency  1 − mean absolute change of the pixels outside both (dilated) shape masks.
  temporal_flickering     1 − mean absolute change of the shape's bright-pixel color.
  motion_smoothness       exp(−r / 1 px), r the RMS distance of the centroid track from its best
                          straight constant-speed line.
  dynamic_degree          1 if the centroid travels at least MIN_TRAVEL_PIXELS over the clip.
  imaging_quality         fraction of pixels (shape edges left out) within IMAGING_TOLERANCE of a value
                          a clean render has there: the background outside the shape, the read color
                          times a shade in [stripe darkness, 1] inside it.
Semantic dimensions (per video, 0 or 1 against the prompt): object_class, color, texture,
motion_direction. Reported beside them, in no total: all_semantic, 1 where all four hold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from dcm_lightning.moving_shapes import MovingShapesSpec, ShapeAttributes, analyze_clip
from dcm_lightning.moving_shapes.analyzer import MIN_TRAVEL_PIXELS, ClipAnalysis, bright_region, track_travel
from dcm_lightning.moving_shapes.vocabulary import COLORS

QUALITY_WEIGHTS: dict[str, float] = {
    "subject_consistency": 1.0,
    "background_consistency": 1.0,
    "temporal_flickering": 1.0,
    "motion_smoothness": 1.0,
    "dynamic_degree": 0.5,
    "imaging_quality": 1.0,
}
SEMANTIC_DIMENSIONS: dict[str, str] = {  # MiniBench dimension -> the oracle attribute it checks
    "object_class": "shape",
    "color": "color",
    "texture": "texture",
    "motion_direction": "direction",
}
MOTION_SCALE_PIXELS = 1.0
IMAGING_TOLERANCE = 0.1
EDGE_DILATION = 2  # pixels around a shape mask that count as its edge (anti-aliasing, blur)


def _dilate(masks: Tensor, pixels: int) -> Tensor:
    """f h w bool → the masks grown by ``pixels`` in every direction."""
    if pixels == 0:
        return masks
    grown = F.max_pool2d(masks.float().unsqueeze(1), 2 * pixels + 1, stride=1, padding=pixels)
    return grown.squeeze(1).bool()


def _erode(masks: Tensor, pixels: int) -> Tensor:
    return ~_dilate(~masks, pixels)


def _shift(mask: Tensor, dy: int, dx: int) -> Tensor:
    """h w mask moved by (dy, dx) pixels, what leaves the frame dropped."""
    out = torch.zeros_like(mask)
    h, w = mask.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = mask[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def subject_consistency(analysis: ClipAnalysis) -> float:
    scores = []
    for f in range(len(analysis.masks) - 1):
        labels = [(analysis.frame_shapes[g], analysis.frame_colors[g], analysis.frame_textures[g]) for g in (f, f + 1)]
        if None in labels[0] or None in labels[1] or labels[0] != labels[1]:
            scores.append(0.0)
            continue
        dx, dy = (analysis.centroids[f + 1] - analysis.centroids[f]).round().long().tolist()
        moved = _shift(analysis.masks[f], dy, dx)
        nxt = analysis.masks[f + 1]
        scores.append(float((moved & nxt).sum()) / float((moved | nxt).sum()))
    return sum(scores) / len(scores)


def background_consistency(video: Tensor, analysis: ClipAnalysis) -> float:
    """video: c f h w in [0, 1]."""
    outside = ~_dilate(analysis.masks, EDGE_DILATION)  # f h w
    changes = []
    for f in range(video.shape[1] - 1):
        both = outside[f] & outside[f + 1]
        if both.any():
            changes.append(float((video[:, f + 1] - video[:, f]).abs()[:, both].mean()))
    return 1.0 - sum(changes) / len(changes) if changes else 0.0


def _bright_color(frame: Tensor, mask: Tensor) -> Tensor | None:
    """Mean RGB of a frame's brightest shape pixels (the unstriped part), None without a shape."""
    return frame[:, bright_region(frame, mask)[2]].mean(dim=1) if mask.any() else None


def temporal_flickering(video: Tensor, analysis: ClipAnalysis) -> float:
    colors = [_bright_color(video[:, f], analysis.masks[f]) for f in range(video.shape[1])]
    changes = [
        float((b - a).abs().mean()) if a is not None and b is not None else 1.0
        for a, b in zip(colors[:-1], colors[1:], strict=True)
    ]
    return 1.0 - sum(changes) / len(changes)


def motion_smoothness(analysis: ClipAnalysis) -> float:
    residual = analysis.track_residual
    return 0.0 if math.isnan(residual) else math.exp(-residual / MOTION_SCALE_PIXELS)


def dynamic_degree(analysis: ClipAnalysis) -> float:
    travel = track_travel(analysis.centroids)
    return float(travel is not None and float(travel.norm()) >= MIN_TRAVEL_PIXELS)


def imaging_quality(video: Tensor, analysis: ClipAnalysis, spec: MovingShapesSpec) -> float:
    background = torch.tensor(spec.background).view(3, 1, 1, 1)
    outside = ~_dilate(analysis.masks, EDGE_DILATION)
    inside = _erode(analysis.masks, 1)
    clean = (video - background).abs().amax(dim=0) <= IMAGING_TOLERANCE  # f h w
    if analysis.color is not None:
        color = torch.tensor(COLORS[analysis.color]).view(3, 1, 1, 1)
        # Distance to the segment {color · s : s in [stripe darkness, 1]}.
        shade = ((video * color).sum(dim=0) / color.square().sum()).clamp(spec.stripe_darkness, 1.0)
        inside_clean = (video - color * shade).abs().amax(dim=0) <= IMAGING_TOLERANCE
        clean = torch.where(inside, inside_clean, clean)
    judged = outside | inside
    return float(clean[judged].float().mean()) if judged.any() else 0.0


def score_video(video: Tensor, attributes: ShapeAttributes, spec: MovingShapesSpec) -> dict[str, float]:
    """Every MiniBench dimension of one ``c f h w`` video in [0, 1] against the prompt's attributes."""
    video = video.detach().float().cpu().clamp(0, 1)
    analysis = analyze_clip(video, spec)
    matches = analysis.matches(attributes)
    return {
        "subject_consistency": subject_consistency(analysis),
        "background_consistency": background_consistency(video, analysis),
        "temporal_flickering": temporal_flickering(video, analysis),
        "motion_smoothness": motion_smoothness(analysis),
        "dynamic_degree": dynamic_degree(analysis),
        "imaging_quality": imaging_quality(video, analysis, spec),
        **{name: float(matches[attribute]) for name, attribute in SEMANTIC_DIMENSIONS.items()},
        "all_semantic": float(all(matches[attribute] for attribute in SEMANTIC_DIMENSIONS.values())),
    }


def aggregate(per_video: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean of each dimension over videos, then Quality, Semantic and Total = (4·Quality + Semantic)/5."""
    if not per_video:
        raise ValueError("MiniBench needs at least one scored video.")
    dimensions = {name: sum(v[name] for v in per_video) / len(per_video) for name in per_video[0]}
    quality = sum(QUALITY_WEIGHTS[n] * dimensions[n] for n in QUALITY_WEIGHTS) / sum(QUALITY_WEIGHTS.values())
    semantic = sum(dimensions[n] for n in SEMANTIC_DIMENSIONS) / len(SEMANTIC_DIMENSIONS)
    return {
        **dimensions,
        "quality": quality,
        "semantic": semantic,
        "total": (4 * quality + semantic) / 5,
    }
