"""What a user points at, made ready to generate: a teacher (folder, ``.ckpt``, pipeline folder) or a
distilled student (``fit`` checkpoint or exported folder) → a ``sampling.Sampler``.

This module stands above the training modules: it rebuilds a student's module from its checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from dcm_lightning import modules
from dcm_lightning.checkpoints import MODULE_KEY, is_module_checkpoint, read_lightning_checkpoint
from dcm_lightning.diffusion.phases import Schedule
from dcm_lightning.errors import UserError
from dcm_lightning.sampling import Sampler, student_sampler, teacher_sampler
from dcm_lightning.students import is_student_folder, load_student
from dcm_lightning.teachers.loading import load_teacher

STUDENT_MODULES = tuple(name for name in modules.__all__ if name != "TeacherModule")


def student_module_from_checkpoint(path: str | Path):
    """Rebuild a distillation module (SemE, DetE, LCM/PCM …) from a ``fit`` checkpoint; its teacher is
    loaded from where the checkpoint's hyperparameters point."""
    checkpoint = read_lightning_checkpoint(path)
    name = checkpoint.get(MODULE_KEY)
    if name not in STUDENT_MODULES:
        raise UserError(f"{path} is not a distilled-student checkpoint written by `fit`.")
    hparams = {k: v for k, v in checkpoint.get("hyper_parameters", {}).items() if not k.startswith("_")}
    module = getattr(modules, name)(**hparams)
    module.on_load_checkpoint(checkpoint)
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError:
        raise UserError(f"{path} was written by a {name} of another architecture than this version's.") from None
    module.requires_grad_(False).eval()
    return module, checkpoint


def load_sampler(path: str | Path | None, steps: int | None = None, guidance_scale: float | None = None) -> Sampler:
    """A teacher (default: its N steps and own guidance) or a distilled student (default: its own
    default steps on its own schedule; guidance is distilled into it, so a guidance scale is refused)."""
    student_folder = path is not None and is_student_folder(path)
    if student_folder or is_module_checkpoint(path, *STUDENT_MODULES):
        if guidance_scale is not None:
            raise UserError("guidance is distilled into a student; --guidance-scale applies to teachers only.")
        if student_folder:
            student, config = load_student(path)
            return student_sampler(student, Schedule.from_dict(config["schedule"]), steps or config["default_steps"])
        module, _ = student_module_from_checkpoint(path)
        return student_sampler(module.student, module.schedule, steps or module.hparams.val_steps)
    return teacher_sampler(load_teacher(path), steps, guidance_scale)
