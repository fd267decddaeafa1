"""Context parallelism on gloo CPU processes (`fit` under ``ContextParallelStrategy``), tiny random Wan,
HunyuanVideo and CogVideoX teachers: one SemE step (with temporal coherence) and one DetE step (consistency, GAN
and feature matching, then the discriminator) give the loss terms and the gradients of one unsplit
process on the same sample, within 1e-5 relative; data-parallel × context-parallel (2 × 2, 4
processes) equals 2 data-parallel processes and resumes from its sharded checkpoint."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from dcm_lightning.checkpoints import read_lightning_checkpoint
from dcm_lightning.context_parallel import plan_under, split
from dcm_lightning.errors import UserError
from dcm_lightning.teachers.diffusers_base import DiffusersNetwork
from dcm_lightning.teachers.hunyuan_video_parallel import HUNYUAN_CP_PLAN
from tests.modules.test_real_teachers import KAPPA, real_config
from tests.test_fsdp import run_cli
from tests.tiny_diffusers import teacher_settings, write_latents, write_pipeline_folder


def test_a_family_without_a_plan_and_a_sequence_that_does_not_divide_are_refused_in_one_sentence():
    with pytest.raises(UserError, match="not available for Linear"):  # a transformer without a plan
        DiffusersNetwork(torch.nn.Linear(2, 2)).enable_context_parallel(None)
    with pytest.raises(UserError, match="5 tokens do not split over 2 context-parallel ranks"):
        split(torch.zeros(1, 5, 3), 1, SimpleNamespace(size=2, rank=0))
    assert torch.equal(split(torch.arange(6).view(1, 6), 1, SimpleNamespace(size=3, rank=1)), torch.tensor([[2, 3]]))


def test_a_psi_copy_gets_the_plan_entries_of_the_module_it_stands_in_for():
    assert plan_under(HUNYUAN_CP_PLAN, "proj_out") == {"": HUNYUAN_CP_PLAN["proj_out"]}
    assert plan_under(HUNYUAN_CP_PLAN, "norm_out") == {}
    assert set(plan_under(HUNYUAN_CP_PLAN, "transformer_blocks")) == {"0"}


def context_parallel(ulysses: int) -> dict:
    return {"class_path": "dcm_lightning.strategies.ContextParallelStrategy", "init_args": {"ulysses": ulysses}}


class RecordSteps(Callback):
    """Test probe: rank 0 saves every optimizer step's whole gradients (the student's and the
    discriminator's, by parameter name) and the loss terms each batch logged."""

    def __init__(self, out: str) -> None:
        self.out, self.steps, self.metrics = Path(out), [], []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        names = {id(p): n for n, p in pl_module.named_parameters()}
        grads = {}
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                if parameter.grad is not None:
                    grad = parameter.grad
                    grads[names[id(parameter)]] = (grad.full_tensor() if hasattr(grad, "full_tensor") else grad).clone()
        self.steps.append(grads)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.metrics.append({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")})

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.global_rank == 0:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"steps": self.steps, "metrics": self.metrics}, self.out)


def write_config(work: Path, stage: str, family: str, steps: int, devices: int, ulysses: int, batch: int, **model):
    """A shipped config on ``devices`` CPU processes (``ulysses`` > 1: split that many ways) with the probe."""
    path = real_config(work, stage, family, steps, learning_rate=1e-3, **model)
    values = yaml.safe_load(path.read_text())
    if devices > 1:
        values["trainer"]["devices"] = devices
        values["trainer"]["strategy"] = context_parallel(ulysses)
    values["trainer"]["callbacks"][0]["init_args"]["save_last"] = True
    probe = {"class_path": "tests.test_context_parallel.RecordSteps", "init_args": {"out": str(work / f"{stage}.pt")}}
    values["trainer"]["callbacks"].append(probe)
    values["data"]["init_args"]["batch_size"] = batch
    path.write_text(yaml.safe_dump(values))
    return path


def distill_both(
    root: Path, family: str, devices: int, ulysses: int, batch: int, steps: int = 1, semantic: Path | None = None
) -> Path:
    """SemE (TC on) for ``steps`` steps, then DetE for one batch (a G and a D step) from ``semantic``
    (default: that SemE's last checkpoint; the runs compared start DetE from one checkpoint, since
    Adam's first update, about lr·sign(g), turns rounding into differences of 2·lr)."""
    work = root / f"{devices}x{ulysses}"
    write_latents(family, work / "latents")
    teacher = teacher_settings(root / "pipeline", guidance_scale=1.0)
    seme = write_config(work, "seme", family, steps, devices, ulysses, batch, teacher=teacher, boundary_index=KAPPA)
    run_cli(["fit", "--config", str(seme)], root)
    semantic = semantic or work / "seme" / "checkpoints" / f"epoch=0-step={steps}.ckpt"
    detail = {"semantic_checkpoint": str(semantic), "detail": {"lora_rank": 4}, "discriminator": {"hidden_dim": 32}}
    run_cli(["fit", "--config", str(write_config(work, "dete", family, 2, devices, ulysses, batch, **detail))], root)
    return work


def assert_same_steps(split: dict, whole: dict, tolerance: float = 1e-5) -> None:
    """Every logged loss term within ``tolerance`` relative; every optimizer step's gradient within
    ``tolerance`` relative by norm, as a whole and parameter by parameter (plus 1e-6 of the step's
    norm, about ten float32 roundings: a bias before a GroupNorm has a gradient of rounding noise only)."""
    assert len(split["steps"]) == len(whole["steps"]) > 0
    compared = 0
    for step, (a, b) in enumerate(zip(split["steps"], whole["steps"], strict=True)):
        assert a.keys() == b.keys() and a, step
        total = float(torch.cat([g.flatten() for g in b.values()]).norm())
        difference = float(torch.cat([(a[n] - g).flatten() for n, g in b.items()]).norm())
        assert difference <= tolerance * total, (step, difference, total)
        for name, grad in b.items():
            assert float((a[name] - grad).norm()) <= tolerance * float(grad.norm()) + 1e-6 * total, (step, name)
        compared += total > 0
    assert compared, "no gradient anywhere, so the comparison would be empty"
    for a, b in zip(split["metrics"], whole["metrics"], strict=True):
        assert a.keys() == b.keys()
        for key, value in b.items():
            assert a[key] == pytest.approx(value, rel=tolerance, abs=1e-7), key


@pytest.fixture(scope="module", params=["wan", "hunyuan_video", "cogvideox"])
def two_way(request, tmp_path_factory):
    """One process, and 2 processes splitting every sample 2 ways (Ulysses), same 1-sample batches, 2
    SemE steps (the first may have no loss: the student starts as the teacher), then DetE."""
    root = tmp_path_factory.mktemp(f"cp_{request.param}")
    write_pipeline_folder(request.param, root / "pipeline")
    whole = distill_both(root, request.param, 1, 1, 1, 2)
    semantic = whole / "seme" / "checkpoints" / "epoch=0-step=2.ckpt"
    return whole, distill_both(root, request.param, 2, 2, 1, 2, semantic)


def test_a_split_semantic_step_equals_the_unsplit_one_temporal_coherence_included(two_way):
    whole, split = two_way
    whole_record, split_record = torch.load(whole / "seme.pt"), torch.load(split / "seme.pt")
    assert max(metrics["train/tc"] for metrics in whole_record["metrics"]) > 0
    assert_same_steps(split_record, whole_record)


def test_a_split_detail_step_equals_the_unsplit_one_gan_and_feature_matching_included(two_way):
    whole, split = two_way
    whole_record, split_record = torch.load(whole / "dete.pt"), torch.load(split / "dete.pt")
    metrics = whole_record["metrics"][0]
    assert metrics["train/feature_matching"] > 0 and "train/d_loss" in metrics
    assert len(whole_record["steps"]) == 2  # the generator's step, then the discriminator's
    assert any(name.startswith("discriminator.") for name in whole_record["steps"][1])
    assert_same_steps(split_record, whole_record)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["wan", "hunyuan_video"])
def test_data_parallel_by_context_parallel_equals_data_parallel_alone_and_resumes(tmp_path, family):
    """4 processes, 2 data-parallel groups × 2-way split, 1 sample each: the first SemE step and the
    DetE batch after it give what 2 data-parallel processes without the split give (each data-parallel
    rank draws its own GAN noise, so one process on the 2-sample batch would draw other noise); a SemE
    run resumed from its sharded step-1 checkpoint ends as 2 straight steps (each rank of a group reads
    the same items: the resumed stream must too)."""
    write_pipeline_folder(family, tmp_path / "pipeline")
    whole = distill_both(tmp_path, family, 2, 1, 1)
    split = distill_both(tmp_path, family, 4, 2, 1, semantic=whole / "seme" / "checkpoints" / "epoch=0-step=1.ckpt")
    for stage in ("seme", "dete"):
        assert_same_steps(torch.load(split / f"{stage}.pt"), torch.load(whole / f"{stage}.pt"))
    teacher = teacher_settings(tmp_path / "pipeline", guidance_scale=1.0)
    resumed = write_config(split, "seme", family, 2, 4, 2, 1, teacher=teacher, boundary_index=KAPPA)
    run_cli(
        ["fit", "--config", str(resumed), "--ckpt_path", str(split / "seme" / "checkpoints" / "last.ckpt")], tmp_path
    )
    straight = tmp_path / "straight"
    write_latents(family, straight / "latents")
    config = write_config(straight, "seme", family, 2, 4, 2, 1, teacher=teacher, boundary_index=KAPPA)
    run_cli(["fit", "--config", str(config)], tmp_path)
    ends = [read_lightning_checkpoint(w / "seme" / "checkpoints" / "last.ckpt") for w in (split, straight)]
    assert ends[0]["global_step"] == ends[1]["global_step"] == 2
    student = {k: v for k, v in ends[1]["state_dict"].items() if k.startswith("student.")}
    assert student
    for key, value in student.items():
        torch.testing.assert_close(ends[0]["state_dict"][key], value, rtol=0, atol=1e-7)
