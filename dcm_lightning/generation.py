"""What a user points at, made ready to generate: a teacher (folder, ``.ckpt``, pipeline folder) or a
distilled student (``fit`` checkpoint or exported folder) → a ``sampling.Sampler``.

This module stands above the training modules: it rebuilds a student's module from its checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dcm_lightning import modules
from dcm_lightning.checkpoints import MODULE_KEY, is_module_checkpoint, load_module_state, read_checkpoint_metadata
from dcm_lightning.diffusion.phases import Schedule
from dcm_lightning.errors import UserError
from dcm_lightning.sampling import Sampler, student_sampler, teacher_sampler
from dcm_lightning.students import is_student_folder, load_student
from dcm_lightning.teachers.diffusers_base import LatentVideoTeacher, torch_dtype
from dcm_lightning.teachers.loading import load_teacher
from dcm_lightning.teachers.pretrained import is_pipeline_folder, load_codec, load_pipeline_teacher

STUDENT_MODULES = tuple(name for name in modules.__all__ if name != "TeacherModule")


def student_module_from_checkpoint(path: str | Path):
    """Rebuild a distillation module (SemE, DetE, LCM/PCM …) from a ``fit`` checkpoint; its teacher is
    loaded from where the checkpoint's hyperparameters point. Returns the module and the checkpoint's
    metadata (``checkpoints.read_checkpoint_metadata``: hyper_parameters, global_step … — no weights).
    The paths among its settings are found from wherever the checkpoint now is (``recorded_settings``).

    Reads the student's weights only, straight into the module (``load_module_state``): no optimizer
    state, no EMA copy or discriminator, no second copy of the weights; a sharded folder is read in
    this one process."""
    metadata = read_checkpoint_metadata(path)
    name = metadata.get(MODULE_KEY)
    if name not in STUDENT_MODULES:
        raise UserError(f"{path} is not a distilled-student checkpoint written by `fit`.")
    module_class = getattr(modules, name)
    module = module_class(**module_class.recorded_settings(path, metadata))
    module.on_load_checkpoint(metadata)  # the modules' hooks read metadata only (teacher_fingerprint)
    # The student's weights only: sampling and export need neither the EMA target nor the detail
    # expert's discriminator (whose layout may differ between versions).
    load_module_state(path, module.student.state_dict(), prefix="student.")  # UserError if they do not fit
    module.requires_grad_(False).eval()
    return module, metadata


def load_sampler(
    path: str | Path | None,
    steps: int | None = None,
    guidance_scale: float | None = None,
    device: torch.device | str | None = None,
    dtype: str | None = None,
    video: dict[str, int] | None = None,
) -> Sampler:
    """A teacher (default: its N steps and own guidance) or a distilled student (default: its own
    default steps on its own schedule; guidance is distilled into it, so a guidance scale is refused),
    on ``device`` (None: the CPU) in ``dtype`` (None: the teacher's; a real teacher's settings say
    bfloat16 unless told). ``path`` may be a real teacher's diffusers pipeline folder: it is loaded
    with its text encoders and VAE at ``video`` (``num_frames``, ``height``, ``width``; default the
    pipeline's own size). ``video`` also resizes a real teacher's student (default: its config's)."""
    video = dict(video or {})
    settings = {**video, **({"dtype": dtype} if dtype is not None else {})}
    student_folder = path is not None and is_student_folder(path)
    student_checkpoint = not student_folder and is_module_checkpoint(path, *STUDENT_MODULES)
    if (student_folder or student_checkpoint) and guidance_scale is not None:
        raise UserError("guidance is distilled into a student; --guidance-scale applies to teachers only.")
    if student_folder:
        student, config = load_student(path, teacher_settings=settings)
        sampler = student_sampler(student, Schedule.from_dict(config["schedule"]), steps or config["default_steps"])
    elif student_checkpoint:
        if video:
            raise UserError("--num-frames/--height/--width apply to exported students; `export` this checkpoint first.")
        module, _ = student_module_from_checkpoint(path)
        student = module.student
        if isinstance(student, LatentVideoTeacher) and not (student.has_text_encoders and student.has_vae):
            # trained from latents: the text encoders and VAE of its teacher's folder
            student.use_codec(load_codec(student.settings.path, dtype or student.settings.dtype))
        sampler = student_sampler(student, module.schedule, steps or module.hparams.val_steps)
        if dtype is not None:
            sampler.model.to(torch_dtype(dtype))
    elif path is not None and is_pipeline_folder(path):
        sampler = teacher_sampler(load_pipeline_teacher(path, **settings), steps, guidance_scale)
    else:
        if video:
            raise UserError(
                "the tiny teacher's clips have a fixed size; --num-frames/--height/--width apply to real teachers."
            )
        teacher = load_teacher(path)
        sampler = teacher_sampler(teacher.to(torch_dtype(dtype)) if dtype else teacher, steps, guidance_scale)
    if device is not None:
        sampler.model.to(device)
    return sampler
