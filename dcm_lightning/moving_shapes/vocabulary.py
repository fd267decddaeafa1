"""The prompt vocabulary: every attribute a clip has, and the one grammar that names it."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from dcm_lightning.errors import UserError

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
# RGB in [0, 1], chosen far apart in chroma so the oracle separates them under sampling noise.
COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.92, 0.16, 0.14),
    "green": (0.16, 0.82, 0.22),
    "blue": (0.20, 0.36, 0.96),
    "yellow": (0.95, 0.86, 0.14),
    "magenta": (0.90, 0.20, 0.86),
    "cyan": (0.14, 0.86, 0.90),
}
TEXTURES: tuple[str, ...] = ("plain", "striped")
# Unit motion per frame in image coordinates (x right, y down).
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
FILLER_WORDS: tuple[str, ...] = ("a", "moving")


@dataclass(frozen=True)
class ShapeAttributes:
    """What a prompt names; position and speed come from the sample's randomness instead."""

    shape: str
    color: str
    texture: str
    direction: str

    def __post_init__(self) -> None:
        for value, allowed, kind in (
            (self.shape, SHAPES, "shape"),
            (self.color, tuple(COLORS), "color"),
            (self.texture, TEXTURES, "texture"),
            (self.direction, tuple(DIRECTIONS), "direction"),
        ):
            if value not in allowed:
                raise UserError(f"unknown {kind} {value!r}; MovingShapes knows {', '.join(allowed)}.")

    @property
    def prompt(self) -> str:
        return f"a {self.texture} {self.color} {self.shape} moving {self.direction}"


def all_attributes() -> list[ShapeAttributes]:
    """Every combination, in a fixed order (shape, color, texture, direction)."""
    return [ShapeAttributes(*combo) for combo in itertools.product(SHAPES, COLORS, TEXTURES, DIRECTIONS)]


def vocabulary() -> tuple[str, ...]:
    """All words a prompt may use, in a fixed order (the text encoder's token ids)."""
    return (*FILLER_WORDS, *SHAPES, *COLORS, *TEXTURES, *DIRECTIONS)


def parse_prompt(prompt: str) -> ShapeAttributes:
    """Read "a striped red triangle moving left" (any word order) into attributes, or refuse clearly."""
    words = prompt.lower().replace(",", " ").split()
    found: dict[str, str] = {}
    categories = {"shape": SHAPES, "color": tuple(COLORS), "texture": TEXTURES, "direction": tuple(DIRECTIONS)}
    for word in words:
        if word in FILLER_WORDS:
            continue
        kind = next((k for k, allowed in categories.items() if word in allowed), None)
        if kind is None:
            raise UserError(
                f"prompt word {word!r} is not in the MovingShapes vocabulary; "
                f"use e.g. 'a striped red triangle moving left' with words from: {', '.join(vocabulary())}."
            )
        if kind in found and found[kind] != word:
            raise UserError(f"prompt {prompt!r} names two {kind}s ({found[kind]!r} and {word!r}).")
        found[kind] = word
    missing = [k for k in categories if k not in found]
    if missing:
        raise UserError(f"prompt {prompt!r} does not name a {' or '.join(missing)}; every prompt needs all four.")
    return ShapeAttributes(found["shape"], found["color"], found["texture"], found["direction"])


def reduce_to_vocabulary(prompt: str) -> str:
    """The MovingShapes words of a prompt from elsewhere (VBench's, say), the first of each kind kept:
    "a red car turning left" -> "a red left"; "" when it has none (the null prompt). Lets the tiny
    tier run a real benchmark's prompt list end to end; what it generates says nothing about VBench."""
    categories = (SHAPES, tuple(COLORS), TEXTURES, tuple(DIRECTIONS))
    kept, seen = [], set()
    for word in prompt.lower().replace(",", " ").replace(".", " ").split():
        if word in FILLER_WORDS:
            kept.append(word)
            continue
        kind = next((i for i, allowed in enumerate(categories) if word in allowed), None)
        if kind is not None and kind not in seen:
            seen.add(kind)
            kept.append(word)
    return " ".join(kept) if seen else ""
