"""Real teachers from local diffusers pipeline folders (``model_index.json``, ``transformer/``,
``scheduler/``, and optionally the text encoders and the VAE).

A distillation config says ``teacher: {path, num_frames, height, width, …}`` (``DiffusersTeacherConfig``);
``load_diffusers_teacher`` checks the folder, reads its pipeline class from ``model_index.json`` and
hands it to that family's adapter. A fourth family is one adapter file with a ``from_pipeline`` and
one line in ``ADAPTERS``.
"""

from __future__ import annotations

import json
from pathlib import Path

from dcm_lightning.errors import UserError
from dcm_lightning.teachers.cogvideox import CogVideoXTeacher
from dcm_lightning.teachers.diffusers_base import DiffusersTeacherConfig, LatentVideoTeacher, load_pipeline_codec
from dcm_lightning.teachers.hunyuan_video import HunyuanVideoTeacher
from dcm_lightning.teachers.wan import WanTeacher

ADAPTERS: dict[str, type[LatentVideoTeacher]] = {
    adapter.pipeline_name: adapter for adapter in (HunyuanVideoTeacher, WanTeacher, CogVideoXTeacher)
}

__all__ = [
    "ADAPTERS",
    "DiffusersTeacherConfig",
    "is_pipeline_folder",
    "load_codec",
    "load_diffusers_teacher",
    "load_pipeline_teacher",
    "pipeline_class",
]


def is_pipeline_folder(path: str | Path) -> bool:
    """A diffusers pipeline folder (``model_index.json`` at its top)."""
    return (Path(path) / "model_index.json").is_file()


def pipeline_class(folder: Path) -> str:
    """The pipeline class a folder declares, after checking the folder has what every teacher needs."""
    if not folder.is_dir():
        raise UserError(f"teacher folder {str(folder)!r} does not exist.")
    index = folder / "model_index.json"
    if not index.is_file():
        raise UserError(f"{folder} is not a diffusers pipeline folder (it has no model_index.json).")
    name = json.loads(index.read_text()).get("_class_name")
    if name not in ADAPTERS:
        raise UserError(f"{folder} holds a {name}; the supported teachers are {', '.join(ADAPTERS)}.")
    if not (folder / "transformer" / "config.json").is_file():
        raise UserError(f"{folder} is incomplete: transformer/config.json is missing.")
    if not any((folder / "transformer").glob("*.safetensors")) and not any((folder / "transformer").glob("*.bin")):
        raise UserError(f"{folder} is incomplete: transformer/ has no weight files (*.safetensors).")
    if not (folder / "scheduler" / "scheduler_config.json").is_file():
        raise UserError(f"{folder} is incomplete: scheduler/scheduler_config.json is missing.")
    return name


def load_diffusers_teacher(config: DiffusersTeacherConfig | dict) -> LatentVideoTeacher:
    """The adapter (HunyuanVideoTeacher, WanTeacher or CogVideoXTeacher) of a pipeline folder."""
    if isinstance(config, dict):
        config = DiffusersTeacherConfig.from_dict(config)
    folder = Path(config.path)
    teacher = ADAPTERS[pipeline_class(folder)].from_pipeline(folder, config)
    teacher.settings = config  # its folder, dtype and negative prompt, for parts loaded later
    return teacher


def load_pipeline_teacher(folder: str | Path, **settings) -> LatentVideoTeacher:
    """A real teacher from its pipeline folder alone, ready to generate: text encoders and VAE loaded,
    at the pipeline's own video size (``LatentVideoTeacher.native_video``) unless ``settings`` (any
    ``DiffusersTeacherConfig`` field) say otherwise."""
    folder = Path(folder)
    adapter = ADAPTERS[pipeline_class(folder)]
    values = {**adapter.native_video(folder), "text_encoders": True, "vae": True, **settings}
    return adapter.from_pipeline(folder, DiffusersTeacherConfig(path=str(folder), **values))


def load_codec(folder: str | Path, dtype: str = "bfloat16", text_encoders: bool = True, vae: bool = True):
    """A pipeline folder's text encoders and/or VAE alone (``diffusers_base.PipelineCodec``), without
    its transformer: preparing latents, or encoding a few prompts for a run trained from latents."""
    folder = Path(folder)
    return load_pipeline_codec(ADAPTERS[pipeline_class(folder)], folder, dtype, text_encoders, vae)
