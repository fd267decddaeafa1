"""VBench's official aggregation of per-dimension scores into Quality, Semantic and Total.

The facts are VBench's (``scripts/constant.py`` and ``scripts/cal_final_score.py`` of Vchitect/VBench):
each dimension's raw score is min–max normalized with VBench's fixed bounds and multiplied by its
weight (dynamic degree 0.5, every other 1); Quality and Semantic are the weighted means over their
dimension lists; Total = (4·Quality + 1·Semantic) / 5. Unlike VBench's script, a missing dimension
is an error that names it, never a silent zero.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from dcm_lightning.errors import UserError

# dimension → (min, max) of VBench's normalization
NORMALIZATION_BOUNDS: dict[str, tuple[float, float]] = {
    "subject consistency": (0.1462, 1.0),
    "background consistency": (0.2615, 1.0),
    "temporal flickering": (0.6293, 1.0),
    "motion smoothness": (0.706, 0.9975),
    "dynamic degree": (0.0, 1.0),
    "aesthetic quality": (0.0, 1.0),
    "imaging quality": (0.0, 1.0),
    "object class": (0.0, 1.0),
    "multiple objects": (0.0, 1.0),
    "human action": (0.0, 1.0),
    "color": (0.0, 1.0),
    "spatial relationship": (0.0, 1.0),
    "scene": (0.0, 0.8222),
    "appearance style": (0.0009, 0.2855),
    "temporal style": (0.0, 0.364),
    "overall consistency": (0.0, 0.364),
}
DIMENSION_WEIGHTS = {name: 0.5 if name == "dynamic degree" else 1.0 for name in NORMALIZATION_BOUNDS}
QUALITY_DIMENSIONS = (
    "subject consistency",
    "background consistency",
    "temporal flickering",
    "motion smoothness",
    "aesthetic quality",
    "imaging quality",
    "dynamic degree",
)
SEMANTIC_DIMENSIONS = (
    "object class",
    "multiple objects",
    "human action",
    "color",
    "spatial relationship",
    "scene",
    "appearance style",
    "temporal style",
    "overall consistency",
)
QUALITY_WEIGHT, SEMANTIC_WEIGHT = 4.0, 1.0


def dimension_name(key: str) -> str:
    """VBench's result files say ``subject_consistency``; its constants say ``subject consistency``."""
    return key.replace("_", " ")


def weighted_normalized(scores: Mapping[str, float]) -> dict[str, float]:
    """Per dimension: (score − min) / (max − min) · weight."""
    unknown = sorted(set(scores) - set(NORMALIZATION_BOUNDS))
    if unknown:
        raise UserError(f"unknown VBench dimensions {unknown}.")
    normalized = {}
    for name, score in scores.items():
        low, high = NORMALIZATION_BOUNDS[name]
        normalized[name] = (score - low) / (high - low) * DIMENSION_WEIGHTS[name]
    return normalized


def group_score(normalized: Mapping[str, float], dimensions: Iterable[str]) -> float:
    """The weighted mean of a dimension group (its weighted normalized scores over the weights' sum)."""
    dimensions = list(dimensions)
    return sum(normalized[d] for d in dimensions) / sum(DIMENSION_WEIGHTS[d] for d in dimensions)


def vbench_scores(scores: Mapping[str, float]) -> dict[str, float]:
    """{"total", "quality", "semantic"} from raw per-dimension scores (all 16 dimensions needed)."""
    missing = [d for d in (*QUALITY_DIMENSIONS, *SEMANTIC_DIMENSIONS) if d not in scores]
    if missing:
        raise UserError(f"VBench results lack the dimensions {missing}; Total needs all 16.")
    normalized = weighted_normalized(scores)
    quality = group_score(normalized, QUALITY_DIMENSIONS)
    semantic = group_score(normalized, SEMANTIC_DIMENSIONS)
    total = (QUALITY_WEIGHT * quality + SEMANTIC_WEIGHT * semantic) / (QUALITY_WEIGHT + SEMANTIC_WEIGHT)
    return {"total": total, "quality": quality, "semantic": semantic}


def read_vbench_results(paths: Iterable[str | Path]) -> dict[str, float]:
    """Raw dimension scores from VBench evaluator outputs: JSON files ``{dimension: [mean, per-video
    results]}``, given directly or as folders holding them (searched recursively). A dimension found
    twice with different scores is refused."""
    scores: dict[str, float] = {}
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise UserError(f"{path} does not exist.")
        files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
        for file in files:
            try:
                content = json.loads(file.read_text())
            except json.JSONDecodeError:
                raise UserError(f"{file} is not JSON.") from None
            if not isinstance(content, dict):
                continue
            for key, value in content.items():
                name = dimension_name(key)
                if name not in NORMALIZATION_BOUNDS:
                    continue
                score = float(value[0] if isinstance(value, list) else value)
                if name in scores and scores[name] != score:
                    raise UserError(f"dimension {name!r} has two different scores ({scores[name]} and {score}).")
                scores[name] = score
    return scores
