"""TrajectoryDataModule: cached pairs are the teacher's own steps, the latent source noises data to
the drawn grid point, a cache build killed midway resumes exactly, a corrupt shard is named and
rebuilt alone."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from safetensors.torch import load_file

from dcm_lightning.cli import main
from dcm_lightning.data.latent_folder import LatentFolder, write_moving_shapes_latents
from dcm_lightning.data.trajectory_cache import sha256_file
from dcm_lightning.data.trajectory_datamodule import CachedPairs, EpochOrder, NoisedLatents, TrajectoryDataModule
from dcm_lightning.diffusion import sigma_at
from dcm_lightning.errors import UserError
from dcm_lightning.lightning_cli import compose_documented
from dcm_lightning.modules import SemEModule
from dcm_lightning.moving_shapes.datasets import training_suite
from dcm_lightning.sampling import denoiser, ode_trajectory, seeded_noise

REPO = Path(__file__).resolve().parents[2]
KAPPA = 6


@pytest.fixture
def student(random_teacher_folder):
    return SemEModule(teacher=str(random_teacher_folder), boundary_index=KAPPA)


def datamodule(tmp_path: Path, **overrides) -> TrajectoryDataModule:
    settings = dict(cache_dir=str(tmp_path / "cache"), num_trajectories=6, samples_per_shard=2, build_batch_size=2)
    return TrajectoryDataModule(**{**settings, **overrides})


def test_a_cached_pair_is_the_teachers_state_at_n_and_its_next_step(student, tmp_path):
    data = datamodule(tmp_path)
    cache = data.prepare_cache(student)
    pairs = CachedPairs(cache, student.training_indices(), seed=0)
    cases = training_suite(6, data.prompt_seed)
    for item in (0, 5, 13):
        batch = pairs[item]
        sample, n = pairs.order.sample(item), batch["index"]
        assert n in student.training_indices()
        case = cases[sample]
        noise = seeded_noise([case.seed], student.teacher.latent_shape())
        states = list(
            ode_trajectory(
                denoiser(student.teacher, student.teacher.encode_prompts([case.prompt])),
                student.teacher.parameterization,
                noise,
                student.teacher.sigmas(),
            )
        )
        last = student.teacher.num_steps - 1  # state p of the trajectory is grid index last − p
        torch.testing.assert_close(batch["x_n"], states[last - n][0])
        torch.testing.assert_close(batch["x_prev"], states[last - n + 1][0])
        torch.testing.assert_close(batch["text_embeds"], student.teacher.encode_prompts([case.prompt]).embeds[0])


@pytest.mark.parametrize(
    ("world_size", "steps_per_batch", "global_step", "batches_left"),
    [(1, 1, 0, 10), (1, 1, 4, 6), (1, 2, 6, 7), (2, 1, 3, 7)],
)
def test_the_training_stream_ends_with_the_runs_last_batch(
    student, tmp_path, world_size, steps_per_batch, global_step, batches_left
):
    """The loader yields exactly the batches the run still takes (a GAN module takes two optimizer
    steps per batch), every rank's stream picking up where the interrupted run stopped; its length
    counts the run's batches from the first, so that Lightning, which restores its count of the
    epoch's batches, ends the epoch where the uninterrupted run does."""
    data = datamodule(tmp_path, batch_size=2)
    data.cache = data.prepare_cache(student)
    student.optimizer_steps_per_batch = steps_per_batch
    done = global_step // steps_per_batch
    max_steps = (done + batches_left) * steps_per_batch
    loaders = []
    for rank in range(world_size):
        strategy = SimpleNamespace(world_size=world_size, global_rank=rank)
        data.trainer = SimpleNamespace(
            lightning_module=student,
            strategy=strategy,
            accumulate_grad_batches=1,
            global_step=global_step,
            max_steps=max_steps,
        )
        loaders.append(data.train_dataloader())
    assert [len(loader) for loader in loaders] == [done + batches_left] * world_size
    assert [len(list(loader.batch_sampler)) for loader in loaders] == [batches_left] * world_size
    items = [[loader.dataset.indices[p] for p in loader.sampler] for loader in loaders]
    first = done * 2 * world_size
    interleaved = [i for step in range(batches_left) for rank in items for i in rank[2 * step : 2 * step + 2]]
    assert interleaved == list(range(first, first + batches_left * 2 * world_size))


def test_every_pass_visits_each_trajectory_once_reading_shard_by_shard():
    order = EpochOrder(num_samples=7, block=3, seed=0)
    for epoch in range(3):
        visited = [order.sample(epoch * 7 + k) for k in range(7)]
        assert sorted(visited) == list(range(7))
        blocks = [v // 3 for v in visited]
        assert all(blocks[k] == blocks[k + 1] or blocks[k + 1] not in blocks[:k] for k in range(6))
    assert [order.sample(k) for k in range(7)] != [order.sample(7 + k) for k in range(7)]


def test_a_cache_without_the_states_training_needs_is_refused(student, tmp_path):
    with pytest.raises(UserError, match=r"lacks grid indices \[6\]"):
        datamodule(tmp_path, kept_indices=[9, 8, 7]).trajectory_cache(student)


def test_a_cache_of_another_teacher_is_refused(student, tmp_path):
    from tests.conftest import save_random_teacher

    datamodule(tmp_path).prepare_cache(student)
    other = SemEModule(teacher=str(save_random_teacher(tmp_path / "other", seed=1)), boundary_index=KAPPA)
    with pytest.raises(UserError, match="teacher_fingerprint"):
        datamodule(tmp_path).prepare_cache(other)


def test_the_latent_source_noises_a_data_latent_to_the_drawn_grid_point(student, tmp_path):
    write_moving_shapes_latents(tmp_path / "latents", 5, seed=3, teacher=student.teacher)
    latents = LatentFolder(tmp_path / "latents")
    dataset = NoisedLatents(latents, student.training_indices(), seed=0, teacher=student.teacher)
    batch = dataset[4]
    assert "x_prev" not in batch, "the module takes the teacher step online"
    x0 = latents[dataset.order.sample(4)]["latents"]
    sigma = float(sigma_at(torch.tensor(batch["index"]), student.teacher.sigmas()))
    noise = (batch["x_n"] - (1 - sigma) * x0) / sigma
    assert abs(float(noise.std()) - 1.0) < 0.05 and abs(float(noise.mean())) < 0.05
    assert x0.min() >= -1 and x0.max() <= 1 and x0.shape == student.teacher.latent_shape()


# ---- the `cache` command: a real kill, a corrupt shard -------------------------------------------------


def cache_config(tmp_path: Path, teacher: Path, num_trajectories: int) -> Path:
    config = compose_documented(REPO / "configs" / "seme_tiny.yaml", REPO)
    config["trainer"].update(logger=False, callbacks=[], default_root_dir=str(tmp_path / "run"))
    config["model"]["init_args"].update(teacher=str(teacher), boundary_index=KAPPA)
    config["data"]["init_args"].update(
        cache_dir=str(tmp_path / "cache"), num_trajectories=num_trajectories, samples_per_shard=1, build_batch_size=1
    )
    path = tmp_path / "cache.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_cache_build_killed_midway_resumes_with_every_trajectory_exactly_once(random_teacher_folder, tmp_path):
    total = 60
    config = cache_config(tmp_path, random_teacher_folder, total)
    folder = tmp_path / "cache"
    command = [sys.executable, "-m", "dcm_lightning", "cache", "--config", str(config)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list(folder.glob("shard-*.json"))) < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (folder / "manifest.json").exists(), "the build finished before it could be killed"
    done_before = len(list(folder.glob("shard-*.json")))
    assert 3 <= done_before < total

    subprocess.run(command, env=env, check=True, capture_output=True)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert len(manifest["shards"]) == total
    for name, record in manifest["shards"].items():
        assert sha256_file(folder / name) == record["sha256"]
    seeds = [int(s) for name in sorted(manifest["shards"]) for s in load_file(folder / name)["seeds"]]
    assert seeds == [case.seed for case in training_suite(total, 7)]
    assert not list(folder.glob(".*tmp*")), "no temporary files are left behind"


def test_a_flipped_byte_names_the_shard_and_rebuilding_it_touches_no_other(random_teacher_folder, tmp_path, capsys):
    config = cache_config(tmp_path, random_teacher_folder, 4)
    main(["cache", "--config", str(config)])
    folder = tmp_path / "cache"
    shards = sorted(folder.glob("shard-*.safetensors"))
    original = {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in shards}
    data = bytearray(shards[2].read_bytes())
    data[-1] ^= 0xFF
    shards[2].write_bytes(bytes(data))

    student = SemEModule(teacher=str(random_teacher_folder), boundary_index=KAPPA)
    cache = datamodule(tmp_path, num_trajectories=4, samples_per_shard=1).prepare_cache(student)
    with pytest.raises(UserError, match=r"shard-00002\.safetensors .*--rebuild-shard 2"):
        CachedPairs(cache, student.training_indices(), seed=0)[next(k for k in range(64) if _sample_of(cache, k) == 2)]

    main(["cache", "--config", str(config), "--rebuild-shard", "2"])
    for path in shards:
        assert path.read_bytes() == original[path.name][0]
        if path != shards[2]:
            assert path.stat().st_mtime_ns == original[path.name][1], f"{path.name} was rewritten"
    assert "trajectory cache ready" in capsys.readouterr().out


def _sample_of(cache, item: int) -> int:
    return EpochOrder(cache.spec.num_samples, cache.spec.samples_per_shard, 0).sample(item)


def test_the_cache_command_under_torchrun_builds_each_ranks_share_of_the_shards(random_teacher_folder, tmp_path):
    config = cache_config(tmp_path, random_teacher_folder, 4)  # 4 shards of 1 trajectory
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", port]
    result = subprocess.run(
        [*command, "-m", "dcm_lightning", "cache", "--config", str(config), "--device", "cpu"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    # each rank generated 2 of the 4 shards (rank r takes shards r, r + 2), rank 0 wrote the manifest
    for rank in (0, 1):
        assert f"trajectory cache (rank {rank}): 100%" in output and "| 2/2 [" in output, output[-2000:]
    assert "2 of 4 shards on this rank" in output
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    seeds = [int(s) for name in sorted(manifest["shards"]) for s in load_file(tmp_path / "cache" / name)["seeds"]]
    assert seeds == [case.seed for case in training_suite(4, 7)]


def test_inside_fit_the_teacher_reaches_the_accelerator_before_the_cache_is_built(student, tmp_path, monkeypatch):
    """On CPU the ``meta`` device stands in for the accelerator Lightning would move the module to."""
    data = datamodule(tmp_path)
    seen = []
    monkeypatch.setattr(
        TrajectoryDataModule, "prepare_cache", lambda self, consumer, *a: seen.append(consumer.teacher.device)
    )
    strategy = SimpleNamespace(root_device=torch.device("meta"), global_rank=0, world_size=1, barrier=lambda: None)
    data.trainer = SimpleNamespace(lightning_module=student, strategy=strategy)
    data.setup("fit")
    assert seen == [torch.device("meta")]
