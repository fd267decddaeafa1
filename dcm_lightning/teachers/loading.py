"""A teacher from what a config names: the shipped tiny teacher, a tiny-teacher folder or TeacherModule
checkpoint, or a real teacher's diffusers pipeline folder with its settings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dcm_lightning.distributed import is_sharded_checkpoint
from dcm_lightning.errors import UserError
from dcm_lightning.teachers.base import VideoModel
from dcm_lightning.teachers.pretrained import DiffusersTeacherConfig, load_diffusers_teacher
from dcm_lightning.teachers.tiny import SHIPPED_TINY_TEACHER, TinyTeacher


def load_teacher(path: str | Path | dict | DiffusersTeacherConfig | None = None) -> VideoModel:
    """The shipped tiny teacher (``None``), a pretrained tiny-teacher folder, a TeacherModule ``.ckpt``
    (its EMA), or a real teacher: a diffusers pipeline folder with its settings (a
    ``DiffusersTeacherConfig`` or its dict). Frozen, in eval mode."""
    if isinstance(path, DiffusersTeacherConfig | dict):
        return load_diffusers_teacher(path)
    if path is None:
        return TinyTeacher.from_pretrained(SHIPPED_TINY_TEACHER)
    path = Path(path)
    if not path.exists():
        raise UserError(f"checkpoint path {str(path)!r} does not exist.")
    if path.is_dir() and not is_sharded_checkpoint(path):
        if (path / "model_index.json").is_file():
            raise UserError(
                f"{path} is a diffusers pipeline folder; give it as `teacher: {{path: {path}, num_frames: …, "
                "height: …, width: …}` so that the video size is known."
            )
        return TinyTeacher.from_pretrained(path)
    return TinyTeacher.from_checkpoint(path).requires_grad_(False).eval()


def teacher_reference(teacher: str | Path | DiffusersTeacherConfig | dict | None) -> str | dict | None:
    """What a checkpoint's hyperparameters keep of a ``teacher`` setting: plain data (a path or a dict),
    so that checkpoints load with ``weights_only``."""
    if isinstance(teacher, DiffusersTeacherConfig):
        return dataclasses.asdict(teacher)
    return str(teacher) if isinstance(teacher, Path) else teacher


def same_teacher(a: str | dict | None, b: str | dict | None) -> bool:
    """Whether two teacher references (``teacher_reference``'s plain data) name the same teacher: the
    same settings, with paths compared by the file or folder they lead to."""

    def identity(reference):
        if isinstance(reference, str):
            return str(Path(reference).resolve())
        if isinstance(reference, dict) and reference.get("path"):
            return {**reference, "path": str(Path(reference["path"]).resolve())}
        return reference

    return identity(a) == identity(b)
