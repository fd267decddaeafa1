"""SemE → DetE → the DCM sampler on tiny random-weight HunyuanVideo, Wan2.1 and CogVideoX teachers,
through the shipped real-teacher configs (single CPU process; the sharded run is test_fsdp.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from dcm_lightning.cli import main
from dcm_lightning.conditioning import TextCondition
from dcm_lightning.experts import DualExpertNetwork
from dcm_lightning.generation import student_module_from_checkpoint
from dcm_lightning.lightning_cli import compose_documented
from dcm_lightning.sampling import student_sampler
from tests.tiny_diffusers import FAMILIES, LATENT, teacher_settings, write_latents, write_pipeline_folder

REPO = Path(__file__).resolve().parents[2]
CONFIG_NAMES = {"hunyuan_video": "hunyuan", "wan": "wan", "cogvideox": "cogvideox"}
KAPPA = 5  # of the tiny teachers' 10-step grids


def real_config(tmp_path: Path, stage: str, family: str, max_steps: int, **model) -> Path:
    """``configs/<stage>_<family>.yaml`` on one CPU process: the tiny pipeline folder, a few latents,
    2-sample batches, checkpoints every step."""
    config = compose_documented(REPO / "configs" / f"{stage}_{CONFIG_NAMES[family]}.yaml", REPO)
    root = tmp_path / stage
    config["trainer"].update(
        accelerator="cpu",
        num_nodes=1,
        devices=1,
        strategy="auto",
        precision="32-true",
        max_steps=max_steps,
        default_root_dir=str(root),
        logger=False,
        enable_progress_bar=False,
        callbacks=[
            {
                "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                "init_args": {"dirpath": str(root / "checkpoints"), "every_n_train_steps": 1, "save_top_k": -1},
            }
        ],
    )
    config["model"]["init_args"].update(model)
    config["data"]["init_args"].update(latents_dir=str(tmp_path / "latents"), batch_size=2, num_workers=0)
    path = tmp_path / f"{stage}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def distill(root: Path, family: str, full: bool = False) -> tuple[Path, Path, Path]:
    """A tiny real-teacher DCM student through the shipped configs: SemE 1 step, then DetE 1 batch (a G
    and a D step). Unguided teacher (the tiny folders' negative prompt is not needed). ``full``: a
    complete pipeline folder (text encoders, VAE). Returns the pipeline folder and both checkpoints."""
    folder = write_pipeline_folder(family, root / "pipeline", full=full)
    write_latents(family, root / "latents")
    teacher = teacher_settings(folder, guidance_scale=1.0)
    main(["fit", "--config", str(real_config(root, "seme", family, 1, teacher=teacher, boundary_index=KAPPA))])
    semantic = root / "seme" / "checkpoints" / "epoch=0-step=1.ckpt"
    detail = {"semantic_checkpoint": str(semantic), "detail": {"lora_rank": 4}, "discriminator": {"hidden_dim": 32}}
    main(["fit", "--config", str(real_config(root, "dete", family, 2, **detail))])
    return folder, semantic, root / "dete" / "checkpoints" / "epoch=0-step=2.ckpt"


@pytest.fixture(scope="module", params=FAMILIES)
def distilled(request, tmp_path_factory):
    family = request.param
    _, semantic, detail = distill(tmp_path_factory.mktemp(family), family)
    return family, semantic, detail


def test_one_seme_step_moves_the_full_student_and_one_dete_step_only_adapters_and_psi(distilled):
    family, semantic_path, detail_path = distilled
    semantic, _ = student_module_from_checkpoint(semantic_path)
    detail, checkpoint = student_module_from_checkpoint(detail_path)
    assert checkpoint["global_step"] == 2
    teacher_state = semantic.teacher.network.state_dict()
    moved = [k for k, v in semantic.student.network.state_dict().items() if not torch.equal(v, teacher_state[k])]
    assert moved, "the semantic expert's step changed no weight"
    network = detail.student.network
    assert isinstance(network, DualExpertNetwork)
    frozen = {k.replace(".base_layer", ""): v for k, v in network.semantic.state_dict().items() if "lora_" not in k}
    trained = semantic.student.network.state_dict()
    assert frozen.keys() == trained.keys() and all(torch.equal(v, trained[k]) for k, v in frozen.items())
    lora_b = [v for k, v in network.state_dict().items() if "lora_B" in k]
    assert lora_b and any(float(v.abs().max()) > 0 for v in lora_b), "LoRA B stayed at its zero init"
    readable = detail.teacher.network.discriminator_blocks  # HunyuanVideo: its single-stream blocks
    assert detail.discriminator is not None and detail.layers == list(readable)[::2]


def test_the_dcm_sampler_routes_two_steps_to_each_expert(distilled):
    family, _, detail_path = distilled
    module, _ = student_module_from_checkpoint(detail_path)
    calls = []
    network = module.student.network
    original = network.forward

    def counting(x, timestep, *args, expert=None, **kwargs):
        calls.append(expert)
        return original(x, timestep, *args, expert=expert, **kwargs)

    network.forward = counting
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(2, *LATENT, generator=generator)
    condition = TextCondition(
        torch.randn(2, 7, 32, generator=generator),
        torch.ones(2, 7, dtype=torch.bool),
        torch.randn(2, 16, generator=generator) if family == "hunyuan_video" else None,
    )
    latents = student_sampler(module.student, module.schedule, 4).latents(noise, condition)
    assert latents.shape == noise.shape and bool(latents.isfinite().all())
    assert calls == ["semantic", "semantic", "detail", "detail"]
