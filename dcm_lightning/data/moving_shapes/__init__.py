"""MovingShapes: a procedural text-to-video world with exact ground truth (DESIGN.md §4)."""

from dcm_lightning.data.moving_shapes.analyzer import ClipAnalysis, analyze_clip
from dcm_lightning.data.moving_shapes.render import MovingShapesSpec, render_clip
from dcm_lightning.data.moving_shapes.text import MovingShapesTextEncoder, TextCondition
from dcm_lightning.data.moving_shapes.vocabulary import (
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
    "TextCondition",
    "all_attributes",
    "analyze_clip",
    "parse_prompt",
    "render_clip",
]
