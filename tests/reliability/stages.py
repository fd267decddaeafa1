"""The training stages the fault-injection suite interrupts, each as a real ``fit`` config in seconds,
and the means to run, kill and compare them as a user's job would be run, killed and compared.

Every stage is a shipped tiny-tier config (or, for FSDP2, the HunyuanVideo config on a tiny random
pipeline folder) shrunk to a few steps, with a checkpoint after every step, the presets' guards
(``NonFiniteGuard``, ``Preemption``), ``last.ckpt`` as a link, a CSV log, and absolute paths only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from dcm_lightning.checkpoints import read_lightning_checkpoint
from dcm_lightning.lightning_cli import compose_documented
from tests.conftest import dete_config, save_random_teacher
from tests.modules.test_consistency_modules import distill_config

REPO = Path(__file__).resolve().parents[2]
GUARDS = [
    {"class_path": "dcm_lightning.callbacks.NonFiniteGuard", "init_args": {"action": "stop"}},
    {"class_path": "dcm_lightning.callbacks.Preemption"},
]
NO_GAN = {"adversarial": {"weight": 0.0, "feature_matching_weight": 0.0}}


@dataclass(frozen=True)
class Stage:
    name: str
    max_steps: int  # optimizer steps (the detail expert: two per batch)
    devices: int = 1


STAGES = {
    s.name: s
    for s in (
        Stage("teacher", 6),
        Stage("seme", 6),
        Stage("lcm", 6),
        Stage("pcm", 6),
        Stage("vcm", 6),
        Stage("dete_gan", 8),
        Stage("dete_consistency", 8),
        Stage("seme_fsdp2", 4, devices=2),
        Stage("seme_ema_fsdp2", 4, devices=2),
        Stage("dete_fsdp2", 6, devices=2),
    )
}


def _every_step(config: dict, root: Path) -> dict:
    """A checkpoint after every step (last.ckpt a link to it), the guards, a CSV log, no progress bar."""
    config["trainer"].update(
        default_root_dir=str(root),
        enable_progress_bar=False,
        log_every_n_steps=1,
        limit_val_batches=0,
        logger={"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(root)}},
        callbacks=[
            {
                "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                "init_args": {
                    "dirpath": str(root / "checkpoints"),
                    "every_n_train_steps": 1,
                    "save_top_k": -1,
                    "save_last": "link",
                    "enable_version_counter": False,
                },
            },
            *GUARDS,
        ],
    )
    return config


def _tiny(work: Path, name: str, source: str, max_steps: int) -> dict:
    teacher = work / "teacher"
    if not teacher.exists():
        save_random_teacher(teacher)
    return yaml.safe_load(distill_config(work, name, teacher, max_steps, source=source).read_text())


def _teacher_config(max_steps: int) -> dict:
    config = compose_documented(REPO / "configs" / "teacher_tiny.yaml", REPO)
    config["trainer"]["max_steps"] = max_steps
    config["model"]["init_args"].update(size="test", warmup_steps=2)
    config["data"]["init_args"].update(batch_size=4, num_train_clips=64)
    return config


def _semantic_checkpoint(work: Path) -> Path:
    """A SemE checkpoint for the detail-expert stages (trained once per work folder)."""
    checkpoint = work / "semantic" / "checkpoints" / "epoch=0-step=2.ckpt"
    if not checkpoint.exists():
        path = work / "semantic.yaml"
        path.write_text(yaml.safe_dump(_every_step(_tiny(work, "semantic", "seme_tiny", 2), work / "semantic")))
        run_fit(path, work)
    return checkpoint


def _fsdp2_config(work: Path, name: str, module: str, max_steps: int) -> dict:
    from tests.modules.test_real_teachers import real_config
    from tests.test_fsdp import FAMILY, SHARDED
    from tests.tiny_diffusers import teacher_settings, write_latents, write_pipeline_folder

    folder = work / "pipeline"
    if not folder.exists():
        write_pipeline_folder(FAMILY, folder)
        write_latents(FAMILY, work / "latents")
    if module.startswith("seme"):  # "seme_ema": with the EMA target network
        model = {"teacher": teacher_settings(folder, guidance_scale=1.0), "boundary_index": 5}
        model |= {"target_network": "ema"} if module == "seme_ema" else {}
    else:
        semantic = work / "semantic_fsdp2" / "checkpoints" / "epoch=0-step=2.ckpt"
        if not semantic.exists():
            path = work / "semantic_fsdp2.yaml"
            values = yaml.safe_load(
                real_config(
                    work,
                    "seme",
                    FAMILY,
                    2,
                    learning_rate=1e-3,
                    **{"teacher": teacher_settings(folder, guidance_scale=1.0), "boundary_index": 5},
                ).read_text()
            )
            values["trainer"].update(devices=2, strategy=SHARDED)
            path.write_text(yaml.safe_dump(_every_step(values, work / "semantic_fsdp2")))
            run_fit(path, work)
        model = {"semantic_checkpoint": str(semantic), "detail": {"lora_rank": 4}, "discriminator": {"hidden_dim": 32}}
    stage = module.removesuffix("_ema")
    values = yaml.safe_load(real_config(work, stage, FAMILY, max_steps, learning_rate=1e-3, **model).read_text())
    values["trainer"].update(devices=2, strategy=SHARDED)
    return values


def stage_config(stage: Stage, work: Path, run: str) -> Path:
    """The config of ``stage``'s run ``run`` (its folder ``work/run``), written as ``work/run.yaml``."""
    root, steps = work / run, stage.max_steps
    if stage.name == "teacher":
        config = _teacher_config(steps)
    elif stage.name in ("seme", "lcm", "pcm", "vcm"):
        config = _tiny(work, run, f"{stage.name}_tiny", steps)
    elif stage.name.startswith("dete_") and stage.devices == 1:
        semantic = _semantic_checkpoint(work)
        model = {} if stage.name == "dete_gan" else NO_GAN
        config = yaml.safe_load(dete_config(work, run, semantic, steps, **model).read_text())
    else:
        config = _fsdp2_config(work, run, stage.name.removesuffix("_fsdp2"), steps)
    path = work / f"{run}.yaml"
    path.write_text(yaml.safe_dump(_every_step(config, root)))
    return path


# ---- running, interrupting, comparing -----------------------------------------------------------


def _env() -> dict:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))  # tests.* callbacks
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "PYTHONPATH": path}


def start_fit(config: Path, cwd: Path, *extra: str, command: list[str] | None = None) -> subprocess.Popen:
    """``python -m dcm_lightning fit --config CONFIG EXTRA…`` in its own process group."""
    return subprocess.Popen(
        command or [sys.executable, "-m", "dcm_lightning", "fit", "--config", str(config), *extra],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(process: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    return process.returncode, output


def run_fit(config: Path, cwd: Path, *extra: str) -> str:
    status, output = finish(start_fit(config, cwd, *extra))
    assert status == 0, output[-3000:]
    return output


def checkpoint_of_step(root: Path, step: int) -> Path | None:
    found = sorted((root / "checkpoints").glob(f"*step={step}.ckpt"))
    return found[0] if found else None


def interrupt_after(
    process: subprocess.Popen, root: Path, step: int, signum: int, timeout: float = 600, children: bool = False
) -> None:
    """Send ``signum`` to the run's process group once its checkpoint of ``step`` is complete (the
    link ``last.ckpt`` has moved to it), i.e. while it is in step ``step + 1``; with ``children``, to
    the process's children only (a job script's tasks, as SLURM's ``--signal`` without ``B:``)."""
    deadline = time.monotonic() + timeout
    last = root / "checkpoints" / "last.ckpt"
    while not (last.is_symlink() and f"step={step}." in os.readlink(last)):
        if process.poll() is not None:
            raise AssertionError(f"the run ended before step {step}: {process.stdout.read()[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no checkpoint of step {step}")
        time.sleep(0.02)
    if not children:
        os.killpg(process.pid, signum)
        return
    for child in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split():
        os.kill(int(child), signum)


def final_state(root: Path, step: int) -> dict:
    checkpoint = checkpoint_of_step(root, step)
    assert checkpoint is not None, f"{root} has no checkpoint of step {step}"
    return read_lightning_checkpoint(checkpoint)


def tensors(value, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a nested checkpoint entry, by its path."""
    if torch.is_tensor(value):
        return {prefix: value}
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list | tuple) else []
    return {k: v for key, item in items for k, v in tensors(item, f"{prefix}/{key}").items()}


def largest_difference(a: dict, b: dict) -> float:
    """The largest relative difference between the module weights and optimizer states of two
    checkpoints (0.0: bit-identical); the entries must be the same."""
    keys = ("state_dict", *sorted(k for k in a if k.startswith("optimizer")))
    first = {k: v for key in keys for k, v in tensors(a[key], key).items()}
    second = {k: v for key in keys for k, v in tensors(b[key], key).items()}
    assert first.keys() == second.keys() and first
    worst = 0.0
    for key, x in first.items():
        y = second[key].to(x.dtype)
        if x.is_floating_point():
            scale = x.abs().max().clamp_min(1e-12)
            worst = max(worst, float((x - y).abs().max() / scale) if x.numel() else 0.0)
        elif not torch.equal(x, y):
            worst = float("inf")
    return worst
