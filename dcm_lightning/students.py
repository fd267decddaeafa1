"""Self-contained distilled students: ``export`` writes one, ``sample`` loads it without a training config.

A student folder holds ``config.json`` (the teacher-side facts — architecture, text encoder, clip
geometry, shift, N — plus the sampling schedule rule and, for DCM, the dual-expert settings) and
``model.safetensors``: the student network's weights, for DCM the frozen semantic expert together
with the detail expert's adapters and Ψ (or its full copy).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from dcm_lightning.data.moving_shapes import MovingShapesTextEncoder
from dcm_lightning.data.moving_shapes.render import spec_from_dict
from dcm_lightning.errors import UserError
from dcm_lightning.experts import DualExpertNetwork
from dcm_lightning.networks.tiny_dit import TinyDiTConfig, TinyVideoDiT
from dcm_lightning.teachers.tiny import TinyTeacher

STUDENT_KIND = "tiny_student"


def is_student_folder(folder: str | Path) -> bool:
    config = Path(folder) / "config.json"
    return config.is_file() and json.loads(config.read_text()).get("kind") == STUDENT_KIND


def export_student(module, folder: str | Path, provenance: dict, dtype: torch.dtype = torch.float32) -> None:
    """Write a distillation module's student (SemE, LCM/PCM, or DCM with its detail expert)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    student = module.student
    network = student.network
    config = {
        **student.config_dict(provenance),
        "kind": STUDENT_KIND,
        "schedule": module.schedule_rule(),
        "default_steps": int(module.hparams.val_steps),
        "dual_expert": network.settings if isinstance(network, DualExpertNetwork) else None,
    }
    state = {k: v.detach().to(dtype).contiguous() for k, v in network.state_dict().items()}
    save_file(state, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def load_student(folder: str | Path) -> tuple[TinyTeacher, dict]:
    """The student behind the teacher interface (guidance 1) and its config (schedule rule …)."""
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    if config.get("kind") != STUDENT_KIND:
        raise UserError(f"{folder} is not an exported student folder.")
    network: torch.nn.Module = TinyVideoDiT(TinyDiTConfig.from_dict(config["network"]))
    if config["dual_expert"] is not None:
        network = DualExpertNetwork(network, **config["dual_expert"])
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
