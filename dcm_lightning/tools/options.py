"""Options every model-running tool shares: where the model runs and in which precision, and the
video size of a real teacher."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from dcm_lightning.errors import UserError

DTYPES = ("bfloat16", "float16", "float32")


def add_device_options(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--dtype``."""
    parser.add_argument(
        "--device",
        default=None,
        help="where the model runs: cpu, cuda, cuda:N … (default: cuda when a GPU is available, else cpu)",
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPES,
        default=None,
        help="the model's weight precision (default: its teacher's — bfloat16 for a real teacher, float32 for "
        "the tiny one)",
    )


def add_video_options(parser: argparse.ArgumentParser) -> None:
    """``--num-frames``, ``--height``, ``--width`` of a real teacher's (or its student's) videos."""
    for flag, what in (("--num-frames", "frames"), ("--height", "height in pixels"), ("--width", "width in pixels")):
        parser.add_argument(
            flag,
            type=int,
            default=None,
            help=f"video {what} of a real teacher or its student (default: a student's config, a pipeline's own)",
        )


def device_of(args: argparse.Namespace) -> torch.device:
    """The ``--device`` asked for, or cuda when there is one, else cpu; a bad or absent one in one sentence."""
    name = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device; use cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: this machine has no CUDA device; use --device cpu.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s).")
    return device


def video_of(args: argparse.Namespace) -> dict[str, int]:
    """The video size options given (only those), each checked to be positive."""
    video = {"num_frames": args.num_frames, "height": args.height, "width": args.width}
    for name, value in video.items():
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {value}.")
    return {k: v for k, v in video.items() if v is not None}


@dataclass
class Ranks:
    """This process's place under ``torchrun`` (rank 0 of 1 without it) and its device: with no
    ``--device`` given, rank r of a multi-process launch takes ``cuda:LOCAL_RANK``."""

    rank: int
    world_size: int
    device: torch.device

    @classmethod
    def of(cls, args: argparse.Namespace) -> Ranks:
        rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        device = device_of(args)
        if world_size > 1 and device.type == "cuda" and args.device is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return cls(rank, world_size, device)

    @contextmanager
    def process_group(self) -> Iterator[Callable[[], None]]:
        """A barrier across the ranks for the block (nccl on GPUs, gloo on CPUs); a no-op for one process."""
        if self.world_size == 1:
            yield lambda: None
            return
        import torch.distributed as dist

        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        try:
            yield dist.barrier
        finally:
            dist.destroy_process_group()
