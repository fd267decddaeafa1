"""MovingShapes: a procedural text-to-video world with exact ground truth (docs/design.md §4)."""

from dcm_lightning.moving_shapes.analyzer import ClipAnalysis, analyze_clip
from dcm_lightning.moving_shapes.render import MovingShapesSpec, render_clip
from dcm_lightning.moving_shapes.text import MovingShapesTextEncoder
from dcm_lightning.moving_shapes.vocabulary import (
    COLORS,
    DIRECTIONS,
    SHAPES,
    TEXTURES,
    ShapeAttributes,
    all_attributes,
    parse_prompt,
)

__all__ = [
    "COLORS",
    "DIRECTIONS",
    "SHAPES",
    "TEXTURES",
    "ClipAnalysis",
    "MovingShapesSpec",
    "MovingShapesTextEncoder",
    "ShapeAttributes",
    "all_attributes",
    "analyze_clip",
    "parse_prompt",
    "render_clip",
]
