"""Videos and frame grids: ``b c f h w`` tensors in [0, 1] to mp4 and png, and video files read back as clips."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor


def prompt_slug(prompt: str, separator: str = "_", length: int = 80) -> str:
    """A file name of a prompt: its lower-case words joined by ``separator``, at most ``length`` long."""
    words = re.sub(r"[^a-z0-9]+", separator, prompt.lower()).strip(separator)
    return words[:length].rstrip(separator) or "prompt"


def frame_grid(videos: Tensor, upscale: int = 1) -> Tensor:
    """One row per video, one column per frame: b c f h w → c (b h) (f w), nearest-neighbour upscaled."""
    grid = rearrange(videos.clamp(0, 1), "b c f h w -> c (b h) (f w)")
    return grid.repeat_interleave(upscale, dim=1).repeat_interleave(upscale, dim=2)


def preview(videos: Tensor, max_frames: int = 8, max_height: int = 128) -> Tensor:
    """What a frame grid can show of real videos: at most ``max_frames`` evenly spaced frames of each,
    downscaled (area) to at most ``max_height`` pixels high. b c f h w → b c f' h' w'."""
    b, _, f, h, w = videos.shape
    if f > max_frames:
        videos = videos[:, :, torch.linspace(0, f - 1, max_frames).round().long()]
    if h > max_height:
        frames = rearrange(videos.float(), "b c f h w -> (b f) c h w")
        frames = F.interpolate(frames, size=(max_height, max(1, round(w * max_height / h))), mode="area")
        videos = rearrange(frames, "(b f) c h w -> b c f h w", b=b)
    return videos


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


def read_clip(path: str | Path, num_frames: int, height: int, width: int) -> Tensor:
    """The first ``num_frames`` frames of a video file as ``c f h w`` in [0, 1], resized so that it
    covers ``height × width`` (aspect kept, bilinear with antialiasing) and center-cropped to it.
    Raises ``ValueError`` for a video with fewer frames; the decoder's own errors for unreadable files."""
    frames = []
    for frame in iio.imiter(path, plugin="pyav"):
        frames.append(torch.from_numpy(np.ascontiguousarray(frame[..., :3])))
        if len(frames) == num_frames:
            break
    if len(frames) < num_frames:
        raise ValueError(f"it has {len(frames)} frames, fewer than the {num_frames} needed")
    video = rearrange(torch.stack(frames), "f h w c -> f c h w").float() / 255
    h, w = video.shape[-2:]
    scale = max(height / h, width / w)
    size = (max(height, round(h * scale)), max(width, round(w * scale)))
    if size != (h, w):
        video = F.interpolate(video, size=size, mode="bilinear", antialias=True, align_corners=False)
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    video = video[..., top : top + height, left : left + width].clamp(0, 1)
    return rearrange(video, "f c h w -> c f h w").contiguous()
