"""Attribute accuracies of generated MovingShapes videos, read by the oracle analyzer."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from dcm_lightning.moving_shapes import MovingShapesSpec, ShapeAttributes, analyze_clip

ATTRIBUTES = ("shape", "color", "texture", "direction")


def oracle_accuracy(videos: Tensor, attributes: Sequence[ShapeAttributes], spec: MovingShapesSpec) -> dict[str, float]:
    """videos: b c f h w in [0, 1]. Returns ``{shape_acc, color_acc, texture_acc, direction_acc, all_acc}``."""
    hits = {name: 0 for name in ATTRIBUTES}
    all_hits = 0
    for video, expected in zip(videos, attributes, strict=True):
        matches = analyze_clip(video, spec).matches(expected)
        for name in ATTRIBUTES:
            hits[name] += matches[name]
        all_hits += all(matches.values())
    n = len(attributes)
    scores = {f"{name}_acc": hits[name] / n for name in ATTRIBUTES}
    scores["all_acc"] = all_hits / n
    return scores
