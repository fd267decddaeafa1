"""FSDP2 on 2 CPU processes (gloo) under ModelParallelStrategy: `fit` on a tiny random HunyuanVideo
teacher runs SemE and DetE steps, writes sharded checkpoints, resumes from them, matches a single
process on the same global batch, and exports from a sharded checkpoint. Also one DDP run, for the
per-noise-level probe under DDP."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from dcm_lightning.checkpoints import read_lightning_checkpoint
from dcm_lightning.cli import main
from dcm_lightning.conditioning import TextCondition
from dcm_lightning.diffusion.phases import Schedule
from dcm_lightning.errors import UserError
from dcm_lightning.generation import student_module_from_checkpoint
from dcm_lightning.randomness import step_generator
from dcm_lightning.sampling import student_sampler
from dcm_lightning.students import load_student
from tests.modules.test_real_teachers import real_config
from tests.tiny_diffusers import LATENT, teacher_settings, write_latents, write_pipeline_folder

REPO = Path(__file__).resolve().parents[1]
FAMILY = "hunyuan_video"
SHARDED = {
    "class_path": "lightning.pytorch.strategies.ModelParallelStrategy",
    "init_args": {"data_parallel_size": 2, "tensor_parallel_size": 1},
}


PROBE = {
    "class_path": "dcm_lightning.callbacks.NoiseLevelGradients",
    "init_args": {"every_n_batches": 1, "num_buckets": 2, "probe_size": 2},
}


def run_cli(args: list[str], cwd: Path, timeout: float = 300) -> None:
    """``python -m dcm_lightning ARGS`` as a user runs it: Lightning starts rank 1 by re-running it.
    A hung run is killed with its whole process group."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))  # for RecordAdversarialNoise
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "PYTHONPATH": path}
    process = subprocess.Popen(
        [sys.executable, "-m", "dcm_lightning", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    assert process.returncode == 0, output[-3000:]


class RecordAdversarialNoise(Callback):
    """Test probe: each rank writes the σ_adv grid levels and the re-noise ε its DetE steps drew."""

    def __init__(self, out: str) -> None:
        self.out, self.records = Path(out), []

    def setup(self, trainer, pl_module, stage: str) -> None:
        draw = pl_module.adversarial_noise

        def recording(shape):
            levels, eps = draw(shape)
            record = {"step": pl_module.global_step, "seed": pl_module._seed, "shape": list(shape)}
            record["detail_range"] = list(pl_module.segment.sample_indices())
            self.records.append({**record, "levels": levels.tolist(), "eps": eps.flatten().tolist()})
            return levels, eps

        pl_module.adversarial_noise = recording

    def on_train_end(self, trainer, pl_module) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.records))


def config(
    tmp_path: Path, stage: str, devices: int, max_steps: int, batch_size: int = 2, strategy=SHARDED, **model
) -> Path:
    path = real_config(tmp_path, stage, FAMILY, max_steps, learning_rate=1e-3, **model)
    values = yaml.safe_load(path.read_text())
    if devices == 2:
        values["trainer"].update(devices=2, strategy=strategy)
    values["trainer"]["callbacks"][0]["init_args"]["save_last"] = True
    values["trainer"]["callbacks"].append(PROBE)
    values["trainer"]["logger"] = {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": str(tmp_path / stage), "name": "csv"},
    }
    values["data"]["init_args"]["batch_size"] = batch_size
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdp")
    folder = write_pipeline_folder(FAMILY, root / "pipeline")
    teacher = teacher_settings(folder, guidance_scale=1.0)
    paths = {}
    for name, devices, steps, batch in (("sharded", 2, 2, 2), ("straight", 2, 3, 2), ("single", 1, 1, 4)):
        work = root / name
        write_latents(FAMILY, work / "latents")
        paths[name] = config(work, "seme", devices, steps, batch, teacher=teacher, boundary_index=5)
    run_cli(["fit", "--config", str(paths["sharded"])], root)
    semantic = root / "sharded" / "seme" / "checkpoints"
    first = {p.name: read_lightning_checkpoint(p) for p in sorted(semantic.glob("epoch=*"))}
    resumed = config(root / "sharded", "seme", 2, 3, teacher=teacher, boundary_index=5)
    run_cli(["fit", "--config", str(resumed), "--ckpt_path", str(semantic / "last.ckpt")], root)
    run_cli(["fit", "--config", str(paths["straight"])], root)
    run_cli(["fit", "--config", str(paths["single"])], root)
    write_latents(FAMILY, root / "ddp" / "latents")
    ddp = config(root / "ddp", "seme", 2, 1, 2, strategy="ddp", teacher=teacher, boundary_index=5)
    run_cli(["fit", "--config", str(ddp)], root)
    dete = config(
        root / "sharded",
        "dete",
        2,
        4,  # optimizer steps: 2 batches, each a G and a D step
        semantic_checkpoint=str(semantic / "last.ckpt"),
        detail={"lora_rank": 4},
        discriminator={"hidden_dim": 32},
    )
    values = yaml.safe_load(dete.read_text())
    probe = {"class_path": "tests.test_fsdp.RecordAdversarialNoise", "init_args": {"out": str(root / "draws")}}
    values["trainer"]["callbacks"].append(probe)
    dete.write_text(yaml.safe_dump(values))
    run_cli(["fit", "--config", str(dete)], root)
    return root, first


def _student(checkpoint: dict) -> dict[str, torch.Tensor]:
    return {k: v for k, v in checkpoint["state_dict"].items() if k.startswith("student.")}


def test_checkpoints_are_sharded_and_hold_the_student_not_the_teacher(runs):
    root, first = runs
    for folder in (root / "sharded" / "seme" / "checkpoints").glob("*.ckpt"):
        assert {".metadata", "__0_0.distcp", "__1_0.distcp", "meta.pt"} <= {p.name for p in folder.iterdir()}
    checkpoint = first["epoch=0-step=2.ckpt"]
    assert checkpoint["global_step"] == 2 and checkpoint["dcm_lightning_module"] == "SemEModule"
    assert _student(checkpoint) and not any(k.startswith("teacher.") for k in checkpoint["state_dict"])


def test_one_sharded_step_equals_one_single_process_step_on_the_same_global_batch(runs):
    """2 ranks × 2 samples and 1 process × 4 samples read the same 4 stream items: FSDP2's averaged
    gradients must give the same update, up to float rounding. (Adam's first step is about lr·sign(g),
    so a rank's own, unaveraged gradient would flip whole elements by 2·lr; rounding flips only the
    signs of near-zero gradients, a few elements in thousands.)"""
    root, first = runs
    sharded = _student(first["epoch=0-step=1.ckpt"])
    single = _student(read_lightning_checkpoint(root / "single" / "seme" / "checkpoints" / "epoch=0-step=1.ckpt"))
    initial = student_module_from_checkpoint(root / "single" / "seme" / "checkpoints" / "epoch=0-step=1.ckpt")[0]
    teacher = {f"student.network.{k}": v for k, v in initial.teacher.network.state_dict().items()}
    update = torch.cat([(single[k] - teacher[k]).flatten() for k in single])
    difference = torch.cat([(sharded[k] - single[k]).flatten() for k in single])
    assert float(update.abs().max()) > 1e-4, "the step changed nothing, so the comparison would be empty"
    assert float(difference.norm() / update.norm()) < 1e-2


def _probe_metrics(run: Path) -> dict[str, float]:
    """The NoiseLevelGradients values logged at step 0 (before any update) of a run's CSV log."""
    rows = list(csv.DictReader(next(run.glob("csv/version_0/metrics.csv")).open()))
    return {k: float(v) for row in rows if row["step"] == "0" for k, v in row.items() if k.startswith("noise_level")}


def test_the_per_noise_level_gradient_norms_are_the_same_sharded_and_unsharded(runs):
    """FSDP2 reduces the norm over the shards; with the same weights and probe, 2 ranks report what
    one process does."""
    root, _ = runs
    sharded, single = _probe_metrics(root / "sharded" / "seme"), _probe_metrics(root / "single" / "seme")
    assert len(single) == 4 and sharded.keys() == single.keys()  # loss and grad norm at 2 indices
    for key, value in single.items():
        assert sharded[key] == pytest.approx(value, rel=1e-4), key


def test_the_per_noise_level_gradient_norms_are_the_same_under_ddp(runs):
    """Under DDP each rank runs the probe's backward without gradient sync; on the same probe and
    weights, 2 ranks report what one process does."""
    root, _ = runs
    ddp, single = _probe_metrics(root / "ddp" / "seme"), _probe_metrics(root / "single" / "seme")
    assert len(single) == 4 and ddp.keys() == single.keys()
    for key, value in single.items():
        assert ddp[key] == pytest.approx(value, rel=1e-4), key


def test_a_resumed_sharded_run_continues_exactly_where_it_stopped(runs):
    root, _ = runs
    resumed = read_lightning_checkpoint(root / "sharded" / "seme" / "checkpoints" / "last.ckpt")
    straight = read_lightning_checkpoint(root / "straight" / "seme" / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == straight["global_step"] == 3
    for key, value in _student(straight).items():
        torch.testing.assert_close(resumed["state_dict"][key], value, rtol=0, atol=1e-7)


def test_the_detail_expert_trains_sharded_from_a_sharded_semantic_checkpoint_and_exports(runs, tmp_path):
    root, _ = runs
    detail_path = root / "sharded" / "dete" / "checkpoints" / "last.ckpt"
    module, checkpoint = student_module_from_checkpoint(detail_path)
    assert checkpoint["global_step"] == 4 and checkpoint["dcm_lightning_module"] == "DetEModule"
    semantic = _student(read_lightning_checkpoint(root / "sharded" / "seme" / "checkpoints" / "last.ckpt"))
    frozen = module.student.network.semantic_network().state_dict()
    assert all(torch.equal(frozen[k.removeprefix("student.network.")], v) for k, v in semantic.items())

    main(["export", "--checkpoint", str(detail_path), "--out", str(tmp_path / "student"), "--dtype", "float32"])
    exported, config = load_student(tmp_path / "student", pipeline_parts=False)  # the tiny folder has neither
    with pytest.raises(UserError, match="text_encoders: true needs"):
        load_student(tmp_path / "student")  # generation loads the pipeline's text encoders and VAE
    assert (tmp_path / "student" / "transformer" / "config.json").is_file()
    assert (tmp_path / "student" / "transformer_2" / "config.json").is_file()
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(1, *LATENT, generator=generator)
    text = TextCondition(
        torch.randn(1, 7, 32, generator=generator), torch.ones(1, 7, dtype=torch.bool), torch.randn(1, 16)
    )
    from_export = student_sampler(exported, Schedule.from_dict(config["schedule"]), 4).latents(noise, text)
    torch.testing.assert_close(from_export, student_sampler(module.student, module.schedule, 4).latents(noise, text))


def test_the_two_ranks_draw_different_adversarial_noise_in_the_same_step(runs):
    """σ_adv and ε per data-parallel rank (the official seeds per rank): in each DetE step of the
    2-process run the ranks' ε differ, and rank 0 draws what one process draws from (seed, step)."""
    root, _ = runs
    ranks = [json.loads((root / "draws" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["step"] for r in ranks[0]] == [r["step"] for r in ranks[1]] == [0, 2]  # a G and a D step per batch
    for zero, one in zip(*ranks, strict=True):
        assert zero["eps"] != one["eps"]
        generator = step_generator(zero["seed"], zero["step"])  # the one-process stream
        shape, detail_range = zero["shape"], torch.tensor(zero["detail_range"])
        levels = detail_range[torch.randint(len(detail_range), (shape[0],), generator=generator)] - 1
        assert levels.tolist() == zero["levels"]
        assert torch.equal(torch.randn(shape, generator=generator).flatten(), torch.tensor(zero["eps"]))
