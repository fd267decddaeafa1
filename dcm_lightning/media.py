"""Writing videos and frame grids: ``b c f h w`` tensors in [0, 1] to mp4 and png."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from einops import rearrange
from torch import Tensor


def frame_grid(videos: Tensor, upscale: int = 1) -> Tensor:
    """One row per video, one column per frame: b c f h w → c (b h) (f w), nearest-neighbour upscaled."""
    grid = rearrange(videos.clamp(0, 1), "b c f h w -> c (b h) (f w)")
    return grid.repeat_interleave(upscale, dim=1).repeat_interleave(upscale, dim=2)


def to_uint8(images: Tensor) -> np.ndarray:
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def write_png_grid(path: str | Path, videos: Tensor, upscale: int = 4) -> None:
    iio.imwrite(path, to_uint8(rearrange(frame_grid(videos, upscale), "c h w -> h w c")))


def write_mp4(path: str | Path, video: Tensor, fps: int = 8, upscale: int = 4) -> None:
    """One video c f h w → mp4 (H.264, upscaled so players show the small clips). Written under a
    temporary name and renamed, so an interrupted run never leaves a truncated video behind."""
    path = Path(path)
    frames = rearrange(video, "c f h w -> f h w c").repeat_interleave(upscale, 1).repeat_interleave(upscale, 2)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".partial-") as folder:
        partial = Path(folder) / path.name
        iio.imwrite(partial, to_uint8(frames), fps=fps, codec="libx264", plugin="pyav")
        os.replace(partial, path)
