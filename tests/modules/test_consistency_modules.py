"""SemE and the LCM / PCM baselines through the real CLI on a random "test"-size teacher with a
10-step grid: cached training, exact resume, few-step sampling from the checkpoint."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import yaml

from dcm_lightning.cli import main
from dcm_lightning.conditioning import TextCondition
from dcm_lightning.errors import UserError
from dcm_lightning.lightning_cli import compose_documented
from dcm_lightning.modules import PhasedConsistencyModule, SemEModule, VanillaConsistencyModule

REPO = Path(__file__).resolve().parents[2]
KAPPA = 6  # a boundary inside the test teacher's 10-step grid


def distill_config(tmp_path: Path, name: str, teacher: Path, max_steps: int, source: str = "seme_tiny") -> Path:
    """``configs/<source>.yaml`` shrunk to seconds: the random teacher, 8 cached trajectories, batch 4,
    a CSV log of every step's losses, checkpoints every 2 steps."""
    config = compose_documented(REPO / "configs" / f"{source}.yaml", REPO)
    root = tmp_path / name
    config["trainer"].update(
        max_steps=max_steps,
        default_root_dir=str(root),
        limit_val_batches=0,
        enable_progress_bar=False,
        log_every_n_steps=1,
        logger={"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(root)}},
        callbacks=[
            {
                "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                "init_args": {"dirpath": str(root / "checkpoints"), "every_n_train_steps": 2, "save_top_k": -1},
            }
        ],
    )
    model = config["model"]["init_args"]
    model.update(teacher=str(teacher), learning_rate=1e-3)
    if "boundary_index" in model:
        model["boundary_index"] = KAPPA
    config["data"]["init_args"].update(
        cache_dir=str(tmp_path / "cache"), num_trajectories=8, samples_per_shard=4, build_batch_size=4, batch_size=4
    )
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def logged(run: Path, metric: str) -> dict[int, float]:
    """``metric`` per step from a run's CSVLogger file(s)."""
    values = {}
    for path in sorted(run.glob("lightning_logs/version_*/metrics.csv")):
        for row in csv.DictReader(path.open()):
            if row.get(metric):
                values[int(row["step"])] = float(row[metric])
    return values


@pytest.fixture(scope="module")
def seme_runs(tmp_path_factory):
    """One SemE run of 4 steps, and one stopped at 2 and resumed to 4, sharing one cache."""
    from tests.conftest import save_random_teacher

    tmp_path = tmp_path_factory.mktemp("seme_runs")
    teacher = save_random_teacher(tmp_path / "teacher")
    main(["fit", "--config", str(distill_config(tmp_path, "straight", teacher, 4))])
    main(["fit", "--config", str(distill_config(tmp_path, "interrupted", teacher, 2))])
    checkpoint = tmp_path / "interrupted" / "checkpoints" / "epoch=0-step=2.ckpt"
    main(["fit", "--config", str(distill_config(tmp_path, "interrupted", teacher, 4)), "--ckpt_path", str(checkpoint)])
    return tmp_path


def test_a_resumed_seme_run_reproduces_the_losses_and_weights_of_an_uninterrupted_one(seme_runs):
    straight = logged(seme_runs / "straight", "train/loss")
    resumed = logged(seme_runs / "interrupted", "train/loss")
    assert sorted(straight) == [0, 1, 2, 3] and sorted(resumed) == [0, 1, 2, 3]
    assert resumed == straight
    assert logged(seme_runs / "straight", "train/tc"), "SemE logs its temporal coherence term"
    weights = [
        torch.load(next((seme_runs / run / "checkpoints").glob("*step=4.ckpt")), weights_only=True)["state_dict"]
        for run in ("straight", "interrupted")
    ]
    for key in weights[0]:
        torch.testing.assert_close(weights[1][key], weights[0][key], rtol=0, atol=0, msg=key)
    assert not any(key.startswith("teacher.") for key in weights[0]), "checkpoints hold the student, not the teacher"


def test_a_second_run_reuses_the_cache_and_says_so(seme_runs, caplog):
    teacher = seme_runs / "teacher"
    main(["fit", "--config", str(distill_config(seme_runs, "again", teacher, 1))])
    assert "Reusing trajectory cache" in caplog.text


def test_sample_loads_a_student_checkpoint_and_runs_its_four_step_schedule(seme_runs, tmp_path):
    checkpoint = next((seme_runs / "straight" / "checkpoints").glob("*step=4.ckpt"))
    main(
        ["sample", "--checkpoint", str(checkpoint), "--prompt", "a plain red circle moving up", "--out", str(tmp_path)]
    )
    assert (tmp_path / "a_plain_red_circle_moving_up-0.mp4").stat().st_size > 0
    assert '"steps": 4' in (tmp_path / "samples.json").read_text()


def test_a_student_checkpoint_loaded_onto_another_teacher_is_refused(seme_runs, tmp_path):
    from tests.conftest import save_random_teacher

    other = save_random_teacher(tmp_path / "other", seed=1)
    checkpoint = next((seme_runs / "straight" / "checkpoints").glob("*step=4.ckpt"))
    with pytest.raises(UserError, match="distilled from another teacher"):
        SemEModule.load_from_checkpoint(checkpoint, teacher=str(other), weights_only=True)
    SemEModule.load_from_checkpoint(checkpoint, weights_only=True)  # its own teacher loads


@pytest.mark.parametrize("source", ["lcm_tiny", "pcm_tiny", "vcm_tiny"])
def test_the_baselines_train_from_the_same_cache(seme_runs, source, caplog):
    main(["fit", "--config", str(distill_config(seme_runs, source, seme_runs / "teacher", 2, source))])
    assert "Reusing trajectory cache" in caplog.text
    assert sorted(logged(seme_runs / source, "train/huber")) == [0, 1]


def test_seme_trains_from_pre_encoded_latents_with_online_teacher_steps(seme_runs, tmp_path):
    config = yaml.safe_load(distill_config(tmp_path, "latents", seme_runs / "teacher", 2).read_text())
    config["data"]["init_args"].update(source="latents", latents_dir=str(tmp_path / "encoded"), num_latents=12)
    path = tmp_path / "latents.yaml"
    path.write_text(yaml.safe_dump(config))
    main(["fit", "--config", str(path)])
    assert len(list((tmp_path / "encoded").glob("part-*.safetensors"))) == 1
    assert sorted(logged(tmp_path / "latents", "train/loss")) == [0, 1]
    assert not (tmp_path / "cache").exists(), "the latent source builds no trajectory cache"


def counting_forwards(network: torch.nn.Module) -> list[int]:
    calls = [0]
    network.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def _batch(module, with_teacher_step: bool) -> dict:
    torch.manual_seed(0)
    condition = module.teacher.encode_prompts(["a plain red circle moving up"] * 2)
    batch = {
        "x_n": torch.randn(2, *module.teacher.latent_shape()),
        "index": torch.tensor([9, 8]),
        "text_embeds": condition.embeds,
        "text_mask": condition.mask,
    }
    if with_teacher_step:
        batch["x_prev"] = torch.randn(2, *module.teacher.latent_shape())
    return batch


def test_a_step_whose_pair_is_cached_runs_no_teacher_forward(random_teacher_folder):
    module = SemEModule(teacher=str(random_teacher_folder), boundary_index=KAPPA)
    calls = counting_forwards(module.teacher.network)
    module.consistency_losses(_batch(module, with_teacher_step=True))["loss"].backward()
    assert calls[0] == 0
    module.consistency_losses(_batch(module, with_teacher_step=False))
    assert calls[0] == 1, "without x_prev the module takes one (guided, batched) teacher step"


def test_the_online_teacher_step_is_one_guided_ddim_jump(random_teacher_folder):
    module = SemEModule(teacher=str(random_teacher_folder), boundary_index=KAPPA)
    batch = _batch(module, with_teacher_step=False)
    sigma = module.sigma(batch["index"])
    condition = TextCondition(batch["text_embeds"], batch["text_mask"])
    prediction = module.teacher.predict(batch["x_n"], sigma, condition)
    sigma_prev = module.sigma(batch["index"] - 1).view(-1, 1, 1, 1, 1)
    expected = (1 - sigma_prev) * prediction.x0 + sigma_prev * prediction.eps
    stepped = module.teacher_step(batch["x_n"], sigma, module.sigma(batch["index"] - 1), condition)
    torch.testing.assert_close(stepped, expected)


def test_schedules_follow_the_segments(tmp_path):
    from tests.conftest import make_random_teacher

    make_random_teacher(num_steps=50).save_pretrained(tmp_path / "teacher50")
    teacher = str(tmp_path / "teacher50")
    seme = SemEModule(teacher=teacher, boundary_index=37)
    assert seme.training_indices() == list(range(38, 50))
    assert seme.sampling_indices(4) == [49, 43, 37, 18]  # the official Hunyuan 2 + 2 schedule at κ = 37
    pcm = PhasedConsistencyModule(teacher=teacher, num_phases=4)
    assert pcm.training_indices() == list(range(0, 50))
    assert pcm.sampling_indices(4) == [49, 36, 24, 11]  # one jump per phase start
    assert [pcm.segment.phase_end(n) for n in (49, 37, 36, 12, 11, 0)] == [36, 36, 24, 11, -1, -1]
    lcm = PhasedConsistencyModule(teacher=teacher, num_phases=1)
    assert {lcm.segment.phase_end(n) for n in lcm.training_indices()} == {-1}
    assert lcm.sampling_indices(4) == [49, 37, 24, 12]  # uniform strides over the whole trajectory
    vcm = VanillaConsistencyModule(teacher=teacher, boundary_index=37)
    assert vcm.training_indices() == list(range(0, 50)) and vcm.segment.phase_ends() == [-1, 37]
    assert vcm.sampling_indices(4) == seme.sampling_indices(4)  # DCM's sampler, one network
    with pytest.raises(UserError, match="at least 2 steps"):
        seme.sampling_indices(1)
