"""The sampling check every module runs at validation: oracle accuracies plus a frame grid in TensorBoard."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
from torch import Tensor

from dcm_lightning.data.moving_shapes import MovingShapesSpec, parse_prompt
from dcm_lightning.evaluation.oracle_accuracy import oracle_accuracy
from dcm_lightning.media import frame_grid


def log_sample_check(
    module: L.LightningModule,
    videos: Tensor,
    prompts: Sequence[str],
    spec: MovingShapesSpec,
    batch_idx: int,
    prefix: str = "val",
) -> dict[str, float]:
    """videos: b c f h w in [0, 1], one per prompt. Logs ``{prefix}/shape_acc`` … and, for the first
    batch, ``{prefix}/samples`` (one row per video, one column per frame)."""
    scores = oracle_accuracy(videos, [parse_prompt(p) for p in prompts], spec)
    module.log_dict({f"{prefix}/{k}": v for k, v in scores.items()}, batch_size=len(videos))
    experiment = getattr(module.logger, "experiment", None)
    if batch_idx == 0 and hasattr(experiment, "add_image"):
        experiment.add_image(f"{prefix}/samples", frame_grid(videos[:8], upscale=2), module.global_step)
    return scores
