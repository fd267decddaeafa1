"""A VBench prompt subset as a LightningDataModule: the (prompt, index) videos to generate, each rank
its own share, no video on two ranks."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from dcm_lightning.data.loaders import RankShare
from dcm_lightning.data.vbench_prompts import (
    file_sha256,
    load_augmented_prompts,
    load_full_info,
    select_prompts,
    vbench_info_path,
    vbench_jobs,
)


class VBenchDataModule(L.LightningDataModule):
    """Batches of job numbers of a VBench subset; ``jobs`` holds what each number is.

    Args:
        dimensions: VBench dimensions, or ``all`` (its 16).
        prompts_per_dimension: the first K prompts of each dimension in VBench's list (None: all of
            them — the full benchmark's 946 prompts over the 16 dimensions).
        videos_per_prompt: VBench's standard mode uses 5.
        seed: base seed of the initial noise (prompt p's video i: ``clip_seed(seed, p·videos_per_prompt + i)``).
        augmented_prompts: a JSON object {VBench prompt: augmented prompt} to generate from (the files
            keep VBench's names), or None.
        full_info: a ``VBench_full_info.json`` (None: the installed vbench package's).
        batch_size: videos one rank generates together.
    """

    def __init__(
        self,
        dimensions: list[str] | str = "all",
        prompts_per_dimension: int | None = None,
        videos_per_prompt: int = 5,
        seed: int = 0,
        augmented_prompts: str | None = None,
        full_info: str | None = None,
        batch_size: int = 1,
    ) -> None:
        super().__init__()
        self.info_path = Path(full_info) if full_info else vbench_info_path()
        self.prompts = select_prompts(load_full_info(self.info_path), dimensions, prompts_per_dimension)
        self.augmented_file = augmented_prompts
        augmented = load_augmented_prompts(Path(augmented_prompts)) if augmented_prompts else {}
        self.jobs = vbench_jobs(self.prompts, videos_per_prompt, seed, augmented)
        self.dimensions = sorted({d for p in self.prompts for d in p.dimensions})
        self.videos_per_prompt, self.seed, self.batch_size = videos_per_prompt, seed, batch_size

    @property
    def settings(self) -> dict:
        """What the manifest records of the subset."""
        return {
            "prompt_source": {"file": str(self.info_path), "sha256": file_sha256(self.info_path)},
            "dimensions": self.dimensions,
            "num_prompts": len(self.prompts),
            "videos_per_prompt": self.videos_per_prompt,
            "naming": "{prompt}-{index}.mp4",
            "seeds": {
                "base_seed": self.seed,
                "rule": "clip_seed(base_seed, prompt_number * videos_per_prompt + index)",
            },
            "prompt_augmentation": bool(self.augmented_file),
            "augmented_prompts_file": self.augmented_file,
        }

    def val_dataloader(self) -> DataLoader:
        dataset = range(len(self.jobs))  # job numbers; the module reads the jobs from ``self.jobs``
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        sampler = RankShare(dataset, num_replicas=world, rank=rank, shuffle=False)
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler)
