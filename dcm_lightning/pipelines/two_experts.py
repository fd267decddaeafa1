"""WanPipeline's two-transformer rule for pipelines that have one transformer call in their loop.

WanPipeline (Wan2.2) sends timestep t ≥ ``boundary_ratio`` · num_train_timesteps to ``transformer``
and lower ones to ``transformer_2``. ``experts_switched`` gives HunyuanVideoPipeline's and
CogVideoXPipeline's own denoising loops the same rule without copying them: for the length of a
call, the pipeline's ``transformer`` is an ``ExpertSwitch`` that hands each call to the expert
owning its timestep.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import torch
from torch import nn


class ExpertSwitch(nn.Module):
    """Calls ``high`` for timesteps ≥ ``boundary_timestep``, ``low`` below it; everything else the
    pipeline asks of its transformer (config, dtype, device, cache context) is ``high``'s."""

    def __init__(self, high: nn.Module, low: nn.Module, boundary_timestep: float) -> None:
        super().__init__()
        self.high, self.low, self.boundary_timestep = high, low, boundary_timestep

    @property
    def config(self):
        return self.high.config

    @property
    def dtype(self) -> torch.dtype:
        return self.high.dtype

    @property
    def device(self) -> torch.device:
        return self.high.device

    @contextmanager
    def cache_context(self, name: str, **kwargs) -> Iterator[None]:
        with ExitStack() as stack:
            for expert in (self.high, self.low):
                stack.enter_context(expert.cache_context(name, **kwargs))
            yield

    def forward(self, *args, timestep: torch.Tensor, **kwargs):
        # one timestep per call: the loops expand a scalar t over the batch
        expert = self.high if float(timestep.flatten()[0]) >= self.boundary_timestep else self.low
        return expert(*args, timestep=timestep, **kwargs)


@contextmanager
def experts_switched(pipeline) -> Iterator[None]:
    """Within the block, ``pipeline.transformer`` is the ``ExpertSwitch`` of its ``transformer`` and
    ``transformer_2`` at ``boundary_ratio`` (nothing changes without a ``transformer_2`` or a ratio)."""
    high, low, ratio = pipeline.transformer, pipeline.transformer_2, pipeline.config.boundary_ratio
    if low is None or ratio is None:
        yield
        return
    boundary = ratio * pipeline.scheduler.config.num_train_timesteps
    # Set past DiffusionPipeline.__setattr__, which would also rewrite the pipeline's config entry.
    object.__setattr__(pipeline, "transformer", ExpertSwitch(high, low, boundary))
    try:
        yield
    finally:
        object.__setattr__(pipeline, "transformer", high)
