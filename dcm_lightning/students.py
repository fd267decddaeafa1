"""Self-contained distilled students: ``export`` writes one, ``sample`` loads it without a training config.

A student folder holds ``config.json`` (the teacher-side facts — architecture, text encoder, clip
geometry, shift, N — plus the sampling schedule rule and, for DCM, the dual-expert settings) and
``model.safetensors``: the student network's weights, for DCM the frozen semantic expert together
with the detail expert's adapters and Ψ (or its full copy).

A student of a real (diffusers) teacher names its teacher's pipeline folder and settings instead of
an architecture — text encoders, VAE and scheduler come from there — and also holds each expert as a
plain diffusers transformer: ``transformer/`` (the semantic expert, or the only one) and, for DCM,
``transformer_detail/`` (adapters merged, Ψ in place), loadable with ``from_pretrained``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from dcm_lightning.errors import UserError
from dcm_lightning.experts import DualExpertNetwork
from dcm_lightning.moving_shapes import MovingShapesTextEncoder
from dcm_lightning.moving_shapes.render import spec_from_dict
from dcm_lightning.networks.tiny_dit import TinyDiTConfig, TinyVideoDiT
from dcm_lightning.teachers.base import VideoModel
from dcm_lightning.teachers.tiny import TinyTeacher

STUDENT_KIND = "tiny_student"
DIFFUSERS_STUDENT_KIND = "diffusers_student"


def is_student_folder(folder: str | Path) -> bool:
    config = Path(folder) / "config.json"
    return config.is_file() and json.loads(config.read_text()).get("kind") in (STUDENT_KIND, DIFFUSERS_STUDENT_KIND)


def export_student(module, folder: str | Path, provenance: dict, dtype: torch.dtype = torch.float32) -> None:
    """Write a distillation module's student (SemE, LCM/PCM, or DCM with its detail expert)."""
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
    else:  # a diffusers teacher's student: its teacher's folder and settings, and plain transformers
        teacher = module.hparams.teacher
        config = {"kind": DIFFUSERS_STUDENT_KIND, "teacher": teacher, **sampling, "provenance": provenance}
        dual = isinstance(network, DualExpertNetwork)
        semantic = network.semantic_network() if dual else network
        semantic.transformer.to(dtype).save_pretrained(folder / "transformer")
        if dual:
            network.merged_detail_network().transformer.to(dtype).save_pretrained(folder / "transformer_detail")
    state = {k: v.detach().to(dtype).contiguous() for k, v in network.state_dict().items()}
    save_file(state, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")


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
    text encoders, VAE and grid) with the exported network weights copied into the teacher's own
    transformer (no second copy of it; each weight keeps the dtype the pipeline loads it in)."""
    from dcm_lightning.teachers.pretrained import load_diffusers_teacher

    # Generation needs the pipeline's text encoders and VAE, whatever the training run loaded.
    settings = {**config["teacher"], **overrides, "text_encoders": pipeline_parts, "vae": pipeline_parts}
    student = load_diffusers_teacher(settings)
    student.guidance_scale = 1.0  # guidance is distilled into the student
    network = student.network
    if config["dual_expert"] is not None:
        network = DualExpertNetwork(network, **_dual_expert_settings(config))
    network.load_state_dict(load_file(folder / "model.safetensors"))  # copied in each parameter's dtype
    student.network = network.requires_grad_(False).eval()
    return student


def _dual_expert_settings(config: dict) -> dict:
    """The DualExpertNetwork settings of an export. Exports written before κ became one fact also
    kept the boundary as a model timestep; the sampler derives the boundary from the schedule's κ."""
    return {k: v for k, v in config["dual_expert"].items() if k != "boundary_timestep"}
