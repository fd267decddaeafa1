"""The trajectory cache: exact contents, resume after a crash, refusal of a foreign cache, checksums."""

from __future__ import annotations

import pytest
import torch

from dcm_lightning.data.trajectory_cache import TrajectoryCache, cache_spec
from dcm_lightning.errors import UserError
from dcm_lightning.moving_shapes.datasets import prompt_suite
from dcm_lightning.sampling import denoiser, ode_trajectory, seeded_noise

KEPT = (49, 37, 10, -1)


@pytest.fixture
def cases():
    return prompt_suite(5, 1, base_seed=3)


@pytest.fixture
def teacher(random_tiny_teacher):
    random_tiny_teacher.num_steps = 50
    return random_tiny_teacher


def _build(teacher, cases, folder, **kwargs):
    cache = TrajectoryCache(folder, cache_spec(teacher, cases, KEPT, samples_per_shard=2))
    built = cache.build(teacher, cases, batch_size=2, progress=False, **kwargs)
    return cache, built


def test_a_cache_holds_the_teachers_states_at_the_kept_indices(teacher, cases, tmp_path):
    cache, built = _build(teacher, cases, tmp_path)
    cache.finalize()
    assert built == [0, 1, 2] and cache.is_complete()
    shard = cache.load_shard(1)
    assert shard["states"].shape == (2, 4, *teacher.latent_shape())
    assert shard["seeds"].tolist() == [cases[2].seed, cases[3].seed]
    noise = seeded_noise([cases[2].seed], teacher.latent_shape())
    states = list(
        ode_trajectory(
            denoiser(teacher, teacher.encode_prompts([cases[2].prompt])),
            teacher.parameterization,
            noise,
            teacher.sigmas(),
        )
    )
    for k, index in enumerate(KEPT):
        torch.testing.assert_close(shard["states"][0, k], states[49 - index][0])


def test_a_build_interrupted_midway_resumes_without_losing_or_duplicating(teacher, cases, tmp_path, monkeypatch):
    original = TrajectoryCache._write_shard
    written = []

    def crash_on_second_shard(self, shard, batches):
        if len(written) == 1:
            raise KeyboardInterrupt  # the process dies while shard 1 is being written
        written.append(shard)
        original(self, shard, batches)

    monkeypatch.setattr(TrajectoryCache, "_write_shard", crash_on_second_shard)
    with pytest.raises(KeyboardInterrupt):
        _build(teacher, cases, tmp_path)
    monkeypatch.setattr(TrajectoryCache, "_write_shard", original)
    cache, rebuilt = _build(teacher, cases, tmp_path)
    cache.finalize()
    assert written == [0] and rebuilt == [1, 2]
    seeds = torch.cat([cache.load_shard(s)["seeds"] for s in range(3)]).tolist()
    assert seeds == [c.seed for c in cases]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_ranks_build_disjoint_shards_that_together_complete_the_cache(teacher, cases, tmp_path):
    _, rank0 = _build(teacher, cases, tmp_path, rank=0, world_size=2)
    cache, rank1 = _build(teacher, cases, tmp_path, rank=1, world_size=2)
    cache.finalize()
    assert rank0 == [0, 2] and rank1 == [1]


def test_a_cache_for_another_guidance_scale_is_refused(teacher, cases, tmp_path):
    cache, _ = _build(teacher, cases, tmp_path)
    cache.finalize()
    teacher.guidance_scale = 6.0
    with pytest.raises(UserError, match="guidance_scale is 4.0 in the cache but 6.0 was requested"):
        _build(teacher, cases, tmp_path)


def test_a_flipped_byte_names_the_shard_and_only_that_shard_is_rebuilt(teacher, cases, tmp_path):
    cache, _ = _build(teacher, cases, tmp_path)
    cache.finalize()
    path = cache.shard_path(2)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="shard-00002.safetensors is missing or corrupt"):
        cache.load_shard(2)
    cache.invalidate_shard(2)
    cache, rebuilt = _build(teacher, cases, tmp_path)
    cache.finalize()
    assert rebuilt == [2]
    assert cache.load_shard(2)["states"].shape[0] == 1


def test_kept_indices_outside_the_grid_are_refused(teacher, cases):
    with pytest.raises(UserError, match="outside −1..49"):
        cache_spec(teacher, cases, (50, 3))
