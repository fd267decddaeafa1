"""Self-contained distilled students: ``export`` writes one, ``sample`` loads it without a training config.

A student folder holds ``config.json`` (the teacher-side facts — architecture, text encoder, clip
geometry, shift, N — plus the sampling schedule rule and, for DCM, the dual-expert settings) and
``model.safetensors``: the student network's weights, for DCM the frozen semantic expert together
with the detail expert's adapters and Ψ (or its full copy).

A student of a real (diffusers) teacher names its teacher's pipeline folder and settings instead of
an architecture — ``sample`` takes text encoders, VAE and grid from there — and the folder is also a
diffusers pipeline folder (``model_index.json``): ``transformer/`` (the semantic expert, or the only
one), for DCM ``transformer_2/`` (the detail expert: adapters merged, Ψ in place) with the
pipeline's ``boundary_ratio``, a ``scheduler/`` that replays the student's σ lists
(``dcm_lightning.pipelines``), and the teacher's text encoders, tokenizers and VAE, copied or linked.
``config.json`` states the σ lists, σ_b and the pipeline class in plain numbers (``pipeline``).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from dcm_lightning.detail_lora import load_detail_adapters, write_detail_adapters
from dcm_lightning.diffusion import VPrediction, sigma_at
from dcm_lightning.errors import UserError
from dcm_lightning.experts import DualExpertNetwork
from dcm_lightning.moving_shapes import MovingShapesTextEncoder
from dcm_lightning.moving_shapes.render import spec_from_dict
from dcm_lightning.networks.tiny_dit import TinyDiTConfig, TinyVideoDiT
from dcm_lightning.sampling import student_sampler
from dcm_lightning.teachers.base import VideoModel
from dcm_lightning.teachers.tiny import TinyTeacher

STUDENT_KIND = "tiny_student"
DIFFUSERS_STUDENT_KIND = "diffusers_student"
PIPELINE_SHIM = "pipeline.py"  # how diffusers finds an export's pipeline class outside diffusers
EXPORT_STEPS = (4, 8)  # the step counts a real teacher's export replays, with the student's default


def is_student_folder(folder: str | Path) -> bool:
    config = Path(folder) / "config.json"
    return config.is_file() and json.loads(config.read_text()).get("kind") in (STUDENT_KIND, DIFFUSERS_STUDENT_KIND)


def export_student(
    module,
    folder: str | Path,
    provenance: dict,
    dtype: torch.dtype = torch.float32,
    steps: Sequence[int] | None = None,
    link_teacher_parts: bool = False,
    merged_detail: bool = True,
) -> None:
    """Write a distillation module's student (SemE, LCM/PCM, or DCM with its detail expert). A real
    teacher's student also becomes a diffusers pipeline folder replaying its ``steps``-step samplers
    (default ``EXPORT_STEPS`` and its default steps), with the teacher's text encoders, tokenizers and
    VAE copied (or, with ``link_teacher_parts``, symlinked); a LoRA detail expert is also written as
    ``detail_lora/`` + ``detail_psi.safetensors`` (``detail_lora``), which is all of it without
    ``merged_detail``: then no ``transformer_2/`` and no ``model_index.json`` (the folder is no
    pipeline, the LoRA recipe and ``sample`` use it)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    student = module.student
    network = student.network
    sampling = {
        "schedule": module.schedule.to_dict(),  # κ lives here, and only here
        "default_steps": int(module.hparams.val_steps),
        "dual_expert": network.settings if isinstance(network, DualExpertNetwork) else None,
    }
    if isinstance(student, TinyTeacher):
        config = {**student.config_dict(provenance), "kind": STUDENT_KIND, **sampling}
        state = {k: v.detach().to(dtype).contiguous() for k, v in network.state_dict().items()}
        save_file(state, folder / "model.safetensors")
    else:  # a diffusers teacher's student: its teacher's folder and settings, and a pipeline folder
        steps = sorted({*(steps or EXPORT_STEPS), sampling["default_steps"]})
        pipeline = _write_pipeline_folder(module, folder, dtype, steps, link_teacher_parts, merged_detail)
        if isinstance(network, DualExpertNetwork) and network.mode == "lora":
            write_detail_adapters(network, folder, type(module.teacher).pipeline_name, dtype)
        config = {
            "kind": DIFFUSERS_STUDENT_KIND,
            "teacher": dataclasses.asdict(module.teacher.settings),
            **sampling,
            "pipeline": pipeline,
            "provenance": provenance,
        }
        _remove(folder / "model.safetensors")  # an export of an earlier version's
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def _write_pipeline_folder(
    module, folder: Path, dtype: torch.dtype, steps: list[int], link: bool, merged_detail: bool
) -> dict:
    """``model_index.json``, ``transformer/`` (+ ``transformer_2/`` for DCM), ``scheduler/`` and the
    teacher's other parts in ``folder``; returns what config.json states about them in plain numbers:
    the σ list per step count (ending at 0), σ_b and the ``boundary_ratio`` that puts diffusers'
    switch (t ≥ ratio · num_train_timesteps → ``transformer``) midway between the model timesteps of
    σ_κ and the grid level above it, so that σ_κ itself goes to the detail expert, as in the sampler."""
    import diffusers

    from dcm_lightning.pipelines import STUDENT_PIPELINES

    student, network, teacher = module.student, module.student.network, module.teacher
    teacher_folder = Path(teacher.settings.path)
    if folder.resolve() == teacher_folder.resolve():
        raise UserError(f"export into another folder than the teacher's own ({teacher_folder}).")
    dual = isinstance(network, DualExpertNetwork)
    samplers = {n: student_sampler(student, module.schedule, n) for n in steps}
    sigmas = {str(n): [float(s) for s in sampler.sigmas] for n, sampler in samplers.items()}
    scheduler = _student_scheduler(student, teacher_folder, sigmas)
    boundary_sigma, boundary_ratio = samplers[steps[0]].boundary_sigma, None  # σ_b: None for one expert
    if dual:
        kappa = module.schedule.boundary_index
        levels = sigma_at(torch.tensor([kappa, kappa + 1]), student.sigmas())
        timesteps = student.parameterization.model_timestep(levels.double()).double()
        boundary_ratio = float(timesteps.mean()) / scheduler.config.num_train_timesteps

    pipeline_class = STUDENT_PIPELINES[type(teacher).pipeline_name]
    transformer = (network.semantic_network() if dual else network).transformer
    index = {"_class_name": pipeline_class.__name__, "_diffusers_version": diffusers.__version__}
    _remove(folder / PIPELINE_SHIM)
    if not pipeline_class.__module__.startswith("diffusers."):
        # diffusers resolves a _class_name outside diffusers through a module file in the folder
        # (loaded with trust_remote_code=True); this one only imports the class from this package.
        module = PIPELINE_SHIM.removesuffix(".py")
        (folder / PIPELINE_SHIM).write_text(
            f"from {pipeline_class.__module__} import {pipeline_class.__name__}  # noqa: F401  (dcm_lightning)\n"
        )
        index["_class_name"] = [module, pipeline_class.__name__]
    index |= _teacher_parts(teacher_folder, folder, (*type(teacher).text_parts, "vae"), link)
    index["transformer"] = _save_part(transformer.to(dtype), folder / "transformer")
    index["transformer_2"] = [None, None]
    _remove(folder / "transformer_2")  # a previous export's
    if dual and not merged_detail and network.mode != "lora":
        raise UserError("a full-copy detail expert is only its merged transformer; drop --no-merged-detail.")
    if dual and merged_detail:
        detail = network.merged_detail_network().transformer.to(dtype)
        index["transformer_2"] = _save_part(detail, folder / "transformer_2")
    index["scheduler"] = _save_part(scheduler, folder / "scheduler")
    index["boundary_ratio"] = boundary_ratio
    if pipeline_class is diffusers.WanPipeline:
        index["expand_timesteps"] = False
    if merged_detail or not dual:
        (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    else:  # LoRA + Ψ only: not a pipeline without its detail transformer
        _remove(folder / "model_index.json")
    return {
        "class_name": pipeline_class.__name__,
        "steps": steps,
        "sigmas": sigmas,
        "boundary_sigma": boundary_sigma,
        "boundary_ratio": boundary_ratio,
    }


def _student_scheduler(student, teacher_folder: Path, sigmas: dict[str, list[float]]):
    """The scheduler replaying ``sigmas``: flow teachers' σ lists as they are; a VP teacher's as its
    model timesteps, on its own scheduler's ᾱ."""
    from dcm_lightning.pipelines import DCMCogVideoXDDIMScheduler, DCMFlowMatchEulerDiscreteScheduler

    if not isinstance(student.parameterization, VPrediction):
        return DCMFlowMatchEulerDiscreteScheduler(step_sigmas=sigmas)
    timesteps = {
        n: [int(t) for t in student.parameterization.model_timestep(torch.tensor(levels[:-1], dtype=torch.float64))]
        for n, levels in sigmas.items()
    }
    config = DCMCogVideoXDDIMScheduler.load_config(teacher_folder / "scheduler")
    return DCMCogVideoXDDIMScheduler.from_config(config, step_timesteps=timesteps)


def _teacher_parts(teacher_folder: Path, folder: Path, names: Sequence[str], link: bool) -> dict:
    """The teacher folder's ``names`` (text encoders, tokenizers, VAE) copied or symlinked into
    ``folder``, and their model_index.json entries ([None, None] for a part the teacher lacks)."""
    teacher_index = json.loads((teacher_folder / "model_index.json").read_text())
    entries = {}
    for name in names:
        source, target = teacher_folder / name, folder / name
        entry = teacher_index.get(name)
        _remove(target)
        if not (isinstance(entry, list) and entry[0] is not None and source.is_dir()):
            entries[name] = [None, None]
            continue
        if link:
            target.symlink_to(source.resolve(), target_is_directory=True)
        else:
            shutil.copytree(source, target)
        entries[name] = entry
    return entries


def _save_part(part, target: Path) -> list[str]:
    """``save_pretrained`` into ``target``; the part's model_index.json entry (library, class)."""
    _remove(target)
    part.save_pretrained(target)
    module = type(part).__module__
    return ["diffusers" if module.startswith("diffusers.") else module, type(part).__name__]


def _remove(path: Path) -> None:
    """A previous export's file, folder or link at ``path`` (a link's target is left alone)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def load_student(
    folder: str | Path, pipeline_parts: bool = True, teacher_settings: dict | None = None
) -> tuple[VideoModel, dict]:
    """The student behind the teacher interface (guidance 1) and its config (schedule rule …). A real
    teacher's student comes with its pipeline's text encoders and VAE unless ``pipeline_parts`` is
    False (sampling from given embeddings, latents out); ``teacher_settings`` override its teacher's
    (``dtype``, ``num_frames``, ``height``, ``width``: generation at another size or precision)."""
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    if config.get("kind") == DIFFUSERS_STUDENT_KIND:
        return _load_diffusers_student(folder, config, pipeline_parts, teacher_settings or {}), config
    if config.get("kind") != STUDENT_KIND:
        raise UserError(f"{folder} is not an exported student folder.")
    if teacher_settings:
        raise UserError(
            f"a tiny-tier student's clips have the size it was trained at; {', '.join(teacher_settings)} "
            "apply to the students of real teachers."
        )
    network: torch.nn.Module = TinyVideoDiT(TinyDiTConfig.from_dict(config["network"]))
    if config["dual_expert"] is not None:
        network = DualExpertNetwork(network, **_dual_expert_settings(config))
    network.load_state_dict({k: v.float() for k, v in load_file(folder / "model.safetensors").items()})
    network.requires_grad_(False).eval()
    student = TinyTeacher(
        network=network,
        text_encoder=MovingShapesTextEncoder(**config["text_encoder"]),
        spec=spec_from_dict(config["spec"]),
        shift=config["shift"],
        guidance_scale=1.0,
        num_steps=config["num_steps"],
    )
    return student, config


def _load_diffusers_student(folder: Path, config: dict, pipeline_parts: bool, overrides: dict):
    """The student of a real teacher, for generation: the teacher adapter (its pipeline folder gives
    text encoders, VAE and grid) built on the exported semantic expert (``transformer/``), with the
    detail expert's LoRA + Ψ files (``detail_lora``) or, for a full-copy detail expert,
    ``transformer_2/``; each weight in the dtype the pipeline loads it in."""
    from dcm_lightning.teachers.pretrained import load_diffusers_teacher

    # Generation needs the pipeline's text encoders and VAE, whatever the training run loaded.
    settings = {**config["teacher"], **overrides, "text_encoders": pipeline_parts, "vae": pipeline_parts}
    student = load_diffusers_teacher({**settings, "transformer": str(folder / "transformer")})
    student.guidance_scale = 1.0  # guidance is distilled into the student
    network = student.network
    if config["dual_expert"] is not None:
        network = DualExpertNetwork(network, **_dual_expert_settings(config))
        if network.mode == "lora":
            load_detail_adapters(network, folder)
        else:
            detail = type(network.detail.transformer).from_pretrained(folder / "transformer_2")
            network.detail.transformer.load_state_dict(detail.state_dict())
    student.network = network.requires_grad_(False).eval()
    return student


def _dual_expert_settings(config: dict) -> dict:
    """The DualExpertNetwork settings of an export. Exports written before κ became one fact also
    kept the boundary as a model timestep; the sampler derives the boundary from the schedule's κ."""
    return {k: v for k, v in config["dual_expert"].items() if k != "boundary_timestep"}
