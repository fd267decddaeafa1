"""Sample a prompt suite with a model and score every video with the MovingShapes oracle."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from dcm_lightning.checkpoints import Generator
from dcm_lightning.data.moving_shapes.datasets import PromptCase
from dcm_lightning.evaluation.oracle_accuracy import oracle_accuracy


def evaluate_on_suite(
    generator: Generator, cases: Sequence[PromptCase], batch_size: int = 32, progress: bool = True
) -> tuple[dict, Tensor]:
    """Oracle accuracies, sampling time per video and the videos (b c f h w in [0, 1]) of ``cases``."""
    model = generator.model
    videos = []
    start = time.perf_counter()
    batches = range(0, len(cases), batch_size)
    for first in tqdm(batches, desc=f"{generator.kind} {generator.steps} steps", unit="batch", disable=not progress):
        batch = cases[first : first + batch_size]
        videos.append(generator.videos([c.prompt for c in batch], [c.seed for c in batch]).cpu())
    seconds = time.perf_counter() - start
    videos = torch.cat(videos)
    scores = oracle_accuracy(videos, [c.attributes for c in cases], model.spec)
    report = {
        **{k: round(v, 4) for k, v in scores.items()},
        "n_videos": len(cases),
        "steps": generator.steps,
        "guidance_scale": generator.guidance_scale,
        "seconds_per_video": round(seconds / len(cases), 4),
        "threads": torch.get_num_threads(),
    }
    return report, videos
