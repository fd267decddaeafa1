"""Loading trained models from what users point at: a pretrained folder or a Lightning checkpoint.

Nothing is unpickled beyond tensors and plain containers (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from dcm_lightning.errors import UserError
from dcm_lightning.teachers.tiny import SHIPPED_TINY_TEACHER, TinyTeacher


def read_lightning_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {str(path)!r} does not exist.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: say which, not a traceback
        raise UserError(f"{path} is not a readable Lightning checkpoint ({type(error).__name__}).") from None


def teacher_module_from_checkpoint(path: str | Path):
    """Rebuild a TeacherModule (with its EMA) from a ``fit`` checkpoint."""
    from dcm_lightning.modules.teacher import TeacherModule

    checkpoint = read_lightning_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters", {})
    if not any(k.startswith("ema.average.") for k in checkpoint.get("state_dict", {})):
        raise UserError(f"{path} is not a TeacherModule checkpoint (it has no EMA teacher weights).")
    module = TeacherModule(**{k: v for k, v in hparams.items() if not k.startswith("_")})
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError:
        raise UserError(
            f"{path} was written by a TeacherModule of another architecture than this version's; "
            "retrain it or load it with the version that wrote it."
        ) from None
    module.on_load_checkpoint(checkpoint)
    return module, checkpoint


def load_teacher(path: str | Path | None = None) -> TinyTeacher:
    """The shipped tiny teacher (``None``), a pretrained folder, or a TeacherModule ``.ckpt`` (its EMA)."""
    if path is None:
        return TinyTeacher.from_pretrained(SHIPPED_TINY_TEACHER)
    path = Path(path)
    if not path.exists():
        raise UserError(f"checkpoint path {str(path)!r} does not exist.")
    if path.is_dir():
        return TinyTeacher.from_pretrained(path)
    module, _ = teacher_module_from_checkpoint(path)
    teacher = module.teacher(use_ema=True)
    teacher.requires_grad_(False).eval()
    return teacher
