"""Teacher agreement: how close a student's video is to the teacher's from the same noise and prompt."""

from __future__ import annotations

from einops import rearrange
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure


def teacher_agreement(videos: Tensor, references: Tensor) -> dict[str, list[float]]:
    """Per-video PSNR (dB) and SSIM of ``videos`` against ``references`` (both b c f h w in [0, 1]),
    frame by frame as images (torchmetrics, data range 1, SSIM's 11-pixel Gaussian window), averaged
    over the frames of each video."""
    if videos.shape != references.shape:
        raise ValueError(f"videos {tuple(videos.shape)} and references {tuple(references.shape)} differ in shape")
    frames = videos.shape[2]
    preds = rearrange(videos.float().clamp(0, 1), "b c f h w -> (b f) c h w")
    target = rearrange(references.float().clamp(0, 1), "b c f h w -> (b f) c h w")
    psnr = peak_signal_noise_ratio(preds, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
    ssim = structural_similarity_index_measure(preds, target, data_range=1.0, reduction="none")
    return {
        "psnr": psnr.view(-1, frames).mean(dim=1).tolist(),
        "ssim": ssim.view(-1, frames).mean(dim=1).tolist(),
    }
