"""VBench's prompt list, subsets of it by dimension, VBench's video naming, and the (prompt, index)
jobs of a subset with their noise seeds.

The list is ``VBench_full_info.json`` from the ``vbench`` package, read as a file: the package is
found without being imported (``pip install --no-deps vbench`` is enough, its evaluators' heavy
dependencies are not needed to generate videos).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

from dcm_lightning.errors import UserError
from dcm_lightning.randomness import clip_seed

INFO_FILE = "VBench_full_info.json"
INSTALL_HINT = "install VBench's prompt list with `pip install --no-deps vbench==0.1.5`"


def vbench_info_path() -> Path:
    """Where the installed vbench package keeps ``VBench_full_info.json``."""
    spec = importlib.util.find_spec("vbench")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the vbench package is not installed; {INSTALL_HINT}.")
    path = Path(next(iter(spec.submodule_search_locations))) / INFO_FILE
    if not path.is_file():
        raise UserError(f"the installed vbench package has no {INFO_FILE}; {INSTALL_HINT}.")
    return path


def load_full_info(path: Path | None = None) -> list[dict]:
    path = path or vbench_info_path()
    return json.loads(Path(path).read_text())


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class VBenchPrompt:
    """One prompt of a subset and the dimensions it was chosen for (VBench scores every dimension
    that lists the prompt)."""

    prompt: str
    dimensions: list[str] = field(default_factory=list)


def all_dimensions(full_info: list[dict]) -> list[str]:
    """Every dimension the prompt list names (VBench's 16), sorted."""
    return sorted({d for entry in full_info for d in entry["dimension"]})


def select_prompts(full_info: list[dict], dimensions: list[str] | str, per_dimension: int | None) -> list[VBenchPrompt]:
    """The first ``per_dimension`` prompts (in the file's order; None: all) listed under each
    dimension (``"all"``: every dimension); a prompt chosen for two dimensions appears once, with both."""
    known = all_dimensions(full_info)
    dimensions = known if dimensions == "all" else list(dimensions)
    unknown = [d for d in dimensions if d not in known]
    if unknown:
        raise UserError(f"unknown VBench dimension(s) {', '.join(unknown)}; VBench has: {', '.join(known)}.")
    if per_dimension is not None and per_dimension < 1:
        raise UserError("choose at least one prompt per dimension.")
    chosen: dict[str, VBenchPrompt] = {}
    for dimension in dimensions:
        listed = [e["prompt_en"] for e in full_info if dimension in e["dimension"]]
        for prompt in listed[:per_dimension]:
            chosen.setdefault(prompt, VBenchPrompt(prompt)).dimensions.append(dimension)
    return list(chosen.values())


def video_name(prompt: str, index: int, suffix: str = ".mp4") -> str:
    """VBench's standard-mode file name: ``{prompt}-{index}.mp4``, the original prompt even when the
    video was generated from an augmented one."""
    return f"{prompt}-{index}{suffix}"


def load_augmented_prompts(path: Path) -> dict[str, str]:
    """A JSON object mapping VBench prompts to the augmented (extended) prompts to generate from."""
    try:
        mapping = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"cannot read augmented prompts from {path}: {error}.") from None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise UserError(f"{path} must be a JSON object mapping each VBench prompt to its augmented prompt.")
    return mapping


@dataclass(frozen=True)
class VBenchJob:
    """One video of a subset: VBench's ``prompt`` (the file name's), the ``text`` it is generated
    from (an augmented prompt, or the prompt itself), its ``index`` among the prompt's videos, the
    seed of its initial noise and the dimensions the prompt was chosen for."""

    prompt: str
    text: str
    index: int
    seed: int
    dimensions: tuple[str, ...]

    @property
    def name(self) -> str:
        return video_name(self.prompt, self.index)


def vbench_jobs(
    prompts: list[VBenchPrompt], videos_per_prompt: int, seed: int, augmented: dict[str, str] | None = None
) -> list[VBenchJob]:
    """Every (prompt, index) video of a subset, in prompt order: prompt number p's video i starts from
    the noise of ``clip_seed(seed, p · videos_per_prompt + i)``, whichever model and rank makes it."""
    if videos_per_prompt < 1:
        raise UserError("videos_per_prompt must be at least 1.")
    augmented = augmented or {}
    missing = [p.prompt for p in prompts if augmented and p.prompt not in augmented]
    if missing:
        raise UserError(f"the augmented prompts have none for {missing[0]!r}.")
    return [
        VBenchJob(
            entry.prompt,
            augmented.get(entry.prompt, entry.prompt),
            index,
            clip_seed(seed, number * videos_per_prompt + index),
            tuple(entry.dimensions),
        )
        for number, entry in enumerate(prompts)
        for index in range(videos_per_prompt)
    ]
