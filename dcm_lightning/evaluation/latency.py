"""Latency per video (warm-up excluded) and network function evaluations (NFE) per video."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ForwardCount:
    rows: int = 0  # samples pushed through the network, summed over calls

    def per_video(self, videos: int) -> float:
        return self.rows / videos


@contextmanager
def count_forwards(network: nn.Module) -> Iterator[ForwardCount]:
    """Count the samples ``network`` is called on: a guided teacher step runs each video twice (the
    conditional and unconditional halves of one batched call), so NFE per video = rows / videos."""
    count = ForwardCount()

    def hook(_module: nn.Module, args: tuple) -> None:
        count.rows += args[0].shape[0]

    handle = network.register_forward_pre_hook(hook)
    try:
        yield count
    finally:
        handle.remove()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(run: Callable[[], object], device: torch.device, warmup: int = 1, repeats: int = 3) -> float:
    """Median wall time of ``run()`` over ``repeats`` calls after ``warmup`` untimed ones (kernels
    compiled, caches and allocator warm); on CUDA the device is synchronized around each call."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        run()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def nfe_bound_fraction(speedup: float, reference_nfe: float, nfe: float) -> float:
    """Measured speedup as a fraction of the speedup that the NFE ratio alone would allow."""
    return speedup / (reference_nfe / nfe)
