"""VBench's prompt list, subsets of it by dimension, and VBench's video naming.

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


def select_prompts(full_info: list[dict], dimensions: list[str], per_dimension: int) -> list[VBenchPrompt]:
    """The first ``per_dimension`` prompts (in the file's order) listed under each dimension; a prompt
    chosen for two dimensions appears once, with both."""
    known = sorted({d for entry in full_info for d in entry["dimension"]})
    unknown = [d for d in dimensions if d not in known]
    if unknown:
        raise UserError(f"unknown VBench dimension(s) {', '.join(unknown)}; VBench has: {', '.join(known)}.")
    if per_dimension < 1:
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
