"""An exponential moving average of a network's weights, stored as a module so checkpoints keep it."""

from __future__ import annotations

import copy

import torch
from torch import nn


def _reshard(*networks: nn.Module) -> None:
    """Under FSDP2 a module's parameters are its shards (DTensors) or, while gathered for a forward,
    full tensors — a root module stays gathered after a forward without gradient (the EMA target's);
    put every FSDP2 module of ``networks`` back to its shards."""
    from torch.distributed.fsdp import FSDPModule

    for network in networks:
        for module in network.modules():
            if isinstance(module, FSDPModule):
                module.reshard()


class ExponentialMovingAverage(nn.Module):
    """θ_ema ← d·θ_ema + (1 − d)·θ, with the warm-up d = min(decay, (1 + n) / (10 + n)) of
    TensorFlow's ``ExponentialMovingAverage(num_updates=…)`` so early averages are not stuck at init."""

    def __init__(self, network: nn.Module, decay: float) -> None:
        super().__init__()
        self.decay = decay
        self.average = copy.deepcopy(network).requires_grad_(False).eval()
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        _reshard(self.average, network)  # FSDP2: both sides as their shards, never one gathered
        self.num_updates += 1
        n = float(self.num_updates)
        decay = min(self.decay, (1.0 + n) / (10.0 + n))
        for averaged, current in zip(self.average.parameters(), network.parameters(), strict=True):
            averaged.lerp_(current.detach(), 1.0 - decay)

    def train(self, mode: bool = True) -> ExponentialMovingAverage:
        # The averaged copy is only ever evaluated.
        super().train(mode)
        self.average.eval()
        return self
