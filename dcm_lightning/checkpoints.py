"""Loading trained models from what users point at: a pretrained folder or a Lightning checkpoint.

Nothing is unpickled beyond tensors and plain containers (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from dcm_lightning.diffusion import sigma_at
from dcm_lightning.diffusion.phases import CLEAN_INDEX, schedule_indices
from dcm_lightning.distributed import is_sharded_checkpoint, read_sharded_checkpoint
from dcm_lightning.errors import UserError
from dcm_lightning.sampling import sample_teacher, seeded_noise
from dcm_lightning.teachers.base import VideoTeacher
from dcm_lightning.teachers.pretrained import DiffusersTeacherConfig, load_diffusers_teacher
from dcm_lightning.teachers.tiny import SHIPPED_TINY_TEACHER, TinyTeacher

MODULE_KEY = "dcm_lightning_module"  # the class that wrote a checkpoint, by its name in dcm_lightning.modules


def read_lightning_checkpoint(path: str | Path) -> dict:
    """A ``fit`` checkpoint: a ``.ckpt`` file, or a sharded (FSDP2) checkpoint folder read whole."""
    path = Path(path)
    if is_sharded_checkpoint(path):
        return read_sharded_checkpoint(path)
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


def load_teacher(path: str | Path | dict | DiffusersTeacherConfig | None = None) -> VideoTeacher:
    """The shipped tiny teacher (``None``), a pretrained tiny-teacher folder, a TeacherModule ``.ckpt``
    (its EMA), or a real teacher: a diffusers pipeline folder with its settings (a
    ``DiffusersTeacherConfig`` or its dict)."""
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
    module, _ = teacher_module_from_checkpoint(path)
    teacher = module.teacher(use_ema=True)
    teacher.requires_grad_(False).eval()
    return teacher


def teacher_reference(teacher: str | Path | DiffusersTeacherConfig | dict | None) -> str | dict | None:
    """What a checkpoint's hyperparameters keep of a ``teacher`` setting: plain data (a path or a dict),
    so that checkpoints load with ``weights_only``."""
    if isinstance(teacher, DiffusersTeacherConfig):
        return dataclasses.asdict(teacher)
    return str(teacher) if isinstance(teacher, Path) else teacher


def student_module_from_checkpoint(path: str | Path):
    """Rebuild a distillation module (SemE, LCM/PCM …) from a ``fit`` checkpoint; its teacher is loaded
    from where the checkpoint's hyperparameters point."""
    from dcm_lightning import modules

    checkpoint = read_lightning_checkpoint(path)
    name = checkpoint.get(MODULE_KEY)
    if name not in modules.__all__ or name == "TeacherModule":
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


def is_student_checkpoint(path: str | Path | None) -> bool:
    if path is None or (Path(path).is_dir() and not is_sharded_checkpoint(path)):
        return False
    return MODULE_KEY in read_lightning_checkpoint(path)


@dataclass
class Generator:
    """What a sampler needs: the model, its σ schedule (ending at 0) and its guidance scale."""

    model: VideoTeacher
    sigmas: Tensor
    guidance_scale: float
    kind: str  # "teacher" or "student"

    @property
    def steps(self) -> int:
        return len(self.sigmas) - 1

    def videos(self, prompts: Sequence[str], seeds: Sequence[int], open_vocabulary: bool = False) -> Tensor:
        """Decoded videos (b c f h w in [0, 1], on the model's device) of ``prompts``, each from the
        seeded noise of its seed: the same prompt and seed give the same video for every model."""
        model = self.model
        noise = seeded_noise(list(seeds), model.latent_shape()).to(model.device)
        condition = model.encode_prompts(list(prompts), open_vocabulary=open_vocabulary)
        return model.decode(sample_teacher(model, noise, condition, self.sigmas, self.guidance_scale))


def load_generator(path: str | Path | None, steps: int | None = None, guidance_scale: float | None = None) -> Generator:
    """A teacher (default: its N steps and own guidance) or a distilled student (default 4 steps on its
    own schedule; guidance is distilled into it, so a guidance scale is refused)."""
    from dcm_lightning.students import is_student_folder, load_student

    student_folder = path is not None and is_student_folder(path)
    if student_folder or is_student_checkpoint(path):
        if guidance_scale is not None:
            raise UserError("guidance is distilled into a student; --guidance-scale applies to teachers only.")
        if student_folder:
            student, config = load_student(path)
            indices = schedule_indices(config["schedule"], student.num_steps, steps or config["default_steps"])
        else:
            module, _ = student_module_from_checkpoint(path)
            student = module.student
            indices = module.sampling_indices(steps or module.hparams.val_steps)
        sigmas = sigma_at(torch.tensor([*indices, CLEAN_INDEX]), student.sigmas())
        return Generator(student, sigmas, 1.0, "student")
    teacher = load_teacher(path)
    scale = teacher.guidance_scale if guidance_scale is None else guidance_scale
    return Generator(teacher, teacher.sigmas(steps), scale, "teacher")
