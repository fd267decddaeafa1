"""TrajectoryDataModule: the distillation batches, from cached teacher trajectories or from data latents.

One batch format for both sources, per sample: ``x_n`` (c f h w) at grid index ``index`` = n, the
prompt's ``text_embeds`` / ``text_mask``, and — from the cache only — the teacher's next state
``x_prev`` at n − 1. Without ``x_prev`` the module takes that teacher step online.

Which n a sample is drawn at is the student's business (κ lives in the model config): the data
module asks the LightningModule for its ``training_indices()`` and for its ``teacher``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal, Protocol

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset, default_collate

from dcm_lightning.data.latent_folder import LatentFolder, write_moving_shapes_latents
from dcm_lightning.data.loaders import stream_loader
from dcm_lightning.data.prompt_file import prompt_file_suite
from dcm_lightning.data.trajectory_cache import TrajectoryCache, cache_spec
from dcm_lightning.diffusion import sigma_at
from dcm_lightning.diffusion.phases import CLEAN_INDEX
from dcm_lightning.distributed import data_parallel_rank
from dcm_lightning.errors import UserError, check_settings
from dcm_lightning.moving_shapes.datasets import training_suite
from dcm_lightning.randomness import clip_seed
from dcm_lightning.teachers.base import VideoModel

STREAM_LENGTH = 1 << 40  # items of the endless, deterministic training stream


class TrajectoryConsumer(Protocol):
    """What the data module needs from the LightningModule it feeds."""

    teacher: VideoModel

    needs_clean_sample: bool  # add "x_clean" to each batch: the trajectory's end state (σ = 0) from the
    # cache, or the data latent itself for the latent source
    optimizer_steps_per_batch: int  # global steps per batch (2 for the detail expert's G and D steps)

    def training_indices(self) -> list[int]: ...


def draw_index(indices: list[int], seed: int, item: int) -> int:
    """The grid index item ``item`` of the stream is trained at (uniform over the student's indices)."""
    generator = torch.Generator().manual_seed(clip_seed(seed, item))
    return indices[int(torch.randint(len(indices), (1,), generator=generator))]


class EpochOrder:
    """Sample order of each pass over ``num_samples`` items: shards in random order, samples shuffled
    within each shard, so a pass reads each shard once. Seeded by (seed, epoch)."""

    def __init__(self, num_samples: int, block: int, seed: int) -> None:
        self.num_samples, self.block, self.seed = num_samples, block, seed
        self._epoch, self._order = -1, []

    def sample(self, item: int) -> int:
        epoch, offset = divmod(item, self.num_samples)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(clip_seed(self.seed + 1, epoch))
            starts = list(range(0, self.num_samples, self.block))
            order = []
            for b in torch.randperm(len(starts), generator=generator).tolist():
                size = min(self.block, self.num_samples - starts[b])
                order += [starts[b] + i for i in torch.randperm(size, generator=generator).tolist()]
            self._epoch, self._order = epoch, order
        return self._order[offset]


def _text_fields(sample: dict) -> dict:
    """The prompt fields a batch carries: embeddings, mask and, for HunyuanVideo, the pooled vector."""
    return {k: sample[k] for k in ("text_embeds", "text_mask", "text_pooled") if k in sample}


class CachedPairs(Dataset):
    """Item k: a cached trajectory's state at n and at n − 1 (the teacher step), n drawn from k."""

    def __init__(self, cache: TrajectoryCache, indices: list[int], seed: int, with_clean: bool = False) -> None:
        self.cache, self.indices, self.seed, self.with_clean = cache, indices, seed, with_clean
        self.order = EpochOrder(cache.spec.num_samples, cache.spec.samples_per_shard, seed)

    def __len__(self) -> int:
        return STREAM_LENGTH

    def __getitem__(self, item: int) -> dict:
        n = draw_index(self.indices, self.seed, item)
        read = self.cache.read_sample(self.order.sample(item), [n, n - 1] + [CLEAN_INDEX] * self.with_clean)
        pair = {"x_n": read["states"][0], "x_prev": read["states"][1], "index": n, **_text_fields(read)}
        if self.with_clean:
            pair["x_clean"] = read["states"][2]
        return pair


class NoisedLatents(Dataset):
    """Item k: a data latent noised to grid point n, x_n = a_n·x0 + b_n·ε (the official recipe)."""

    def __init__(self, latents: LatentFolder, indices: list[int], seed: int, teacher: VideoModel) -> None:
        self.latents, self.indices, self.seed = latents, indices, seed
        self.parameterization, self.sigmas = teacher.parameterization, teacher.sigmas()
        self.order = EpochOrder(len(latents), len(latents), seed)

    def __len__(self) -> int:
        return STREAM_LENGTH

    def __getitem__(self, item: int) -> dict:
        n = draw_index(self.indices, self.seed, item)
        sample = self.latents[self.order.sample(item)]
        x0 = sample["latents"]  # c f h w
        eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(clip_seed(self.seed + 2, item)))
        a, b = self.parameterization.coefficients(sigma_at(n, self.sigmas).float())
        return {"x_n": a * x0 + b * eps, "x_clean": x0, "index": n, **_text_fields(sample)}


class TrajectoryDataModule(L.LightningDataModule):
    """Distillation data (docs/design.md §3 "TrajectoryDataModule").

    Args:
        source: "cache" — the teacher's ODE trajectories from prompts, cached on disk and reused by every
            run, stage and baseline with the same teacher and grid; "latents" — pre-encoded data latents
            and prompt embeddings, noised to a grid point, with the teacher step taken online.
        cache_dir: the trajectory cache folder; built (or its build resumed) when missing.
        num_trajectories: (prompt, noise seed) pairs in the cache.
        prompt_file: a text file of captions, one per line, for a real teacher's cache (taken in file
            order, cycling); None draws MovingShapes prompts for the tiny teacher.
        prompt_seed: picks the cached prompts (MovingShapes) and the noise seeds.
        kept_indices: grid indices whose states the cache keeps (−1 is the clean sample); None keeps all
            N + 1, which serves every expert and baseline. Training needs each drawn n and n − 1.
        cache_dtype: storage dtype of cached states ("float32", "bfloat16", "float16").
        samples_per_shard: trajectories per cache shard (the unit of resume, checksum and rebuild).
        build_batch_size: trajectories generated together while building the cache.
        latents_dir: folder of pre-encoded latents for source "latents"; for the tiny teacher it is
            filled with rendered MovingShapes clips when missing.
        num_latents: clips rendered into a missing ``latents_dir``.
        batch_size: samples per training step.
        seed: draws the grid index and order of every training item (and the noise of source "latents").
        num_workers: DataLoader worker processes.
    """

    def __init__(
        self,
        source: Literal["cache", "latents"] = "cache",
        cache_dir: str = "runs/cache/tiny_teacher",
        num_trajectories: int = 256,
        prompt_file: str | None = None,
        prompt_seed: int = 7,
        kept_indices: list[int] | None = None,
        cache_dtype: str = "float32",
        samples_per_shard: int = 32,
        build_batch_size: int = 32,
        latents_dir: str = "runs/latents/moving_shapes",
        num_latents: int = 1024,
        batch_size: int = 16,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if source not in ("cache", "latents"):
            raise UserError(f"source must be 'cache' or 'latents', got {source!r}.")
        check_settings(
            num_trajectories=(num_trajectories, 1, None),
            samples_per_shard=(samples_per_shard, 1, None),
            build_batch_size=(build_batch_size, 1, None),
            num_latents=(num_latents, 1, None),
            batch_size=(batch_size, 1, None),
            num_workers=(num_workers, 0, None),
        )
        self.source = source
        self.cache_dir = Path(cache_dir)
        self.num_trajectories = num_trajectories
        self.prompt_file = prompt_file
        self.prompt_seed = prompt_seed
        self.kept_indices = kept_indices
        self.cache_dtype = cache_dtype
        self.samples_per_shard = samples_per_shard
        self.build_batch_size = build_batch_size
        self.latents_dir = Path(latents_dir)
        self.num_latents = num_latents
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.cache: TrajectoryCache | None = None
        self.latents: LatentFolder | None = None

    # ---- the cache -----------------------------------------------------------------------------

    def cases(self) -> list:
        """The (prompt, noise seed) pairs the cache holds trajectories of."""
        if self.prompt_file is not None:
            return prompt_file_suite(self.prompt_file, self.num_trajectories, self.prompt_seed)
        return training_suite(self.num_trajectories, self.prompt_seed)

    def trajectory_cache(self, consumer: TrajectoryConsumer) -> TrajectoryCache:
        """The cache this configuration and ``consumer``'s teacher call for (not yet built)."""
        teacher = consumer.teacher
        kept = self.kept_indices
        if kept is None:
            kept = list(range(teacher.num_steps - 1, CLEAN_INDEX - 1, -1))
        needed = {i for n in consumer.training_indices() for i in (n, n - 1)}
        needed |= {CLEAN_INDEX} if consumer.needs_clean_sample else set()
        missing = sorted(needed - set(kept), reverse=True)
        if missing:
            raise UserError(
                f"kept_indices lacks grid indices {missing} that this student trains on (each n and n − 1, "
                "and −1, the clean end state, for a detail expert whose real samples are the teacher's); "
                "add them or set kept_indices: null to keep every state."
            )
        cases = self.cases()
        spec = cache_spec(teacher, cases, kept, self.cache_dtype, self.samples_per_shard)
        return TrajectoryCache(self.cache_dir, spec)

    def prepare_cache(
        self, consumer: TrajectoryConsumer, rank: int = 0, world_size: int = 1, barrier=lambda: None
    ) -> TrajectoryCache:
        """Reuse the cache when it is complete and matches; otherwise build (or resume) it, this rank
        generating its share of the shards, and finalize it on rank 0."""
        cache = self.trajectory_cache(consumer)
        if cache.is_complete():
            rank_zero_info(
                f"Reusing trajectory cache {cache.folder} ({cache.spec.num_samples} trajectories, "
                f"{len(cache.spec.kept_indices)} states each): the teacher runs no forward pass for them."
            )
            return cache
        start = time.perf_counter()
        cases = self.cases()
        built = cache.build(consumer.teacher, cases, self.build_batch_size, rank, world_size)
        barrier()
        if rank == 0:
            cache.finalize()
        barrier()
        rank_zero_info(
            f"Built trajectory cache {cache.folder}: {len(built)} of {cache.spec.num_shards} shards on this rank "
            f"in {time.perf_counter() - start:.0f} s ({cache.spec.num_samples} trajectories in all)."
        )
        return cache

    # ---- Lightning hooks -----------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        consumer = self.trainer.lightning_module
        if stage != "fit":
            return
        strategy = self.trainer.strategy
        if self.source == "cache":
            # Lightning moves the module only after this hook: the teacher goes to the accelerator now,
            # so that its trajectories are not computed on the CPU (it would be moved there next anyway).
            consumer.teacher.to(strategy.root_device)
            self.cache = self.prepare_cache(consumer, strategy.global_rank, strategy.world_size, strategy.barrier)
        else:
            if strategy.global_rank == 0 and not self.latents_dir.exists():
                write_moving_shapes_latents(self.latents_dir, self.num_latents, self.prompt_seed, consumer.teacher)
            strategy.barrier()
            self.latents = LatentFolder(self.latents_dir)

    def train_dataloader(self) -> DataLoader:
        consumer = self.trainer.lightning_module
        indices = consumer.training_indices()
        if self.source == "cache":
            dataset = CachedPairs(self.cache, indices, self.seed, consumer.needs_clean_sample)
        else:
            dataset = NoisedLatents(self.latents, indices, self.seed, consumer.teacher)
        # Item k of the stream is the same in every run. The run is one epoch: the loader spans the
        # stream from its first item to the run's last batch (the progress bar counts to the end), and a
        # resumed run's loader starts after the last item trained on — Lightning restores the step
        # counter before it asks for dataloaders, and its count of the epoch's batches so far, which
        # this length keeps consistent, so the epoch ends where the uninterrupted run's does.
        trainer = self.trainer
        # Under context parallelism the ranks of a group share a data-parallel rank: the same items.
        rank, ranks = data_parallel_rank(trainer)
        per_step = trainer.accumulate_grad_batches * self.batch_size * ranks
        # global_step counts optimizer steps; a GAN module takes two (G and D) per batch.
        steps_per_batch = consumer.optimizer_steps_per_batch
        done = trainer.global_step // steps_per_batch
        end = STREAM_LENGTH if trainer.max_steps < 0 else -(-trainer.max_steps // steps_per_batch) * per_step
        offset = rank * self.batch_size
        rank_items = _RankInterleaved(range(offset, max(end, done * per_step) + offset), self.batch_size, ranks)
        start = done * trainer.accumulate_grad_batches * self.batch_size  # this rank's items trained on
        return stream_loader(dataset, rank_items, self.batch_size, self.num_workers, start=start)

    def probe_batch(self, consumer: TrajectoryConsumer, index: int, size: int, seed: int) -> dict:
        """``size`` training items all at grid index ``index``, collated: the same trajectories (or
        data latents) whatever the index, so that batches at several indices differ only in noise
        level (the per-noise-level diagnostics). Call after ``setup("fit")``."""
        if self.source == "cache":
            dataset = CachedPairs(self.cache, [index], seed, consumer.needs_clean_sample)
        else:
            dataset = NoisedLatents(self.latents, [index], seed, consumer.teacher)
        return default_collate([dataset[item] for item in range(size)])


class _RankInterleaved:
    """Items of one rank: ranks take turns batch by batch along the stream, so every step of a
    multi-process run consumes a contiguous stretch of it, whatever the number of ranks."""

    def __init__(self, items: range, batch_size: int, world_size: int) -> None:
        self.items, self.batch_size, self.world_size = items, batch_size, world_size

    def __len__(self) -> int:
        return len(self.items) // self.world_size

    def __getitem__(self, position: int) -> int:
        step, offset = divmod(position, self.batch_size)
        return self.items[step * self.batch_size * self.world_size + offset]
