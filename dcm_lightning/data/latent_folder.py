"""Pre-encoded training data: a folder of safetensors parts with data latents and prompt embeddings.

The official DCM recipe trains on VAE latents of real videos and T5/LLM embeddings of their
captions, encoded once beforehand. A part holds ``latents`` (n c f h w), ``text_embeds`` (n l d),
``text_mask`` (n l, uint8) and, for teachers that take a pooled prompt vector (HunyuanVideo),
``text_pooled`` (n p). A real teacher's latents are its VAE's, scaled as its pipeline scales them.
For the tiny tier the "real videos" are rendered MovingShapes clips (pixels are the latents) and
the embeddings come from the frozen MovingShapes text encoder.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor
from tqdm.auto import tqdm

from dcm_lightning.errors import UserError
from dcm_lightning.moving_shapes.datasets import MovingShapesClips

PART_SIZE = 256


class LatentFolder:
    """Random access to the samples of every ``part-*.safetensors`` in a folder (memory-mapped)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        paths = sorted(self.folder.glob("part-*.safetensors"))
        if not paths:
            raise UserError(f"{self.folder} holds no pre-encoded latents (part-*.safetensors files).")
        self.paths = paths
        self.sizes = []
        for path in paths:
            try:
                with safe_open(path, framework="pt") as part:
                    self.sizes.append(part.get_slice("latents").get_shape()[0])
            except Exception as error:  # a truncated or foreign file (SafetensorError)
                raise UserError(
                    f"latent part {path} is not readable ({type(error).__name__}); encode it again "
                    "(`python -m dcm_lightning encode-latents`)."
                ) from None
        self._parts: dict[int, object] = {}  # opened on first read, so DataLoader workers open their own

    def __len__(self) -> int:
        return sum(self.sizes)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        for number, size in enumerate(self.sizes):
            if index < size:
                if number not in self._parts:
                    self._parts[number] = safe_open(self.paths[number], framework="pt")
                part = self._parts[number]
                sample = {
                    "latents": part.get_slice("latents")[index].float(),
                    "text_embeds": part.get_slice("text_embeds")[index].float(),
                    "text_mask": part.get_slice("text_mask")[index].bool(),
                }
                if "text_pooled" in list(part.keys()):  # safetensors handles have no __contains__
                    sample["text_pooled"] = part.get_slice("text_pooled")[index].float()
                return sample
            index -= size
        raise IndexError(index)


def write_part(path: str | Path, latents: Tensor, condition, metadata: dict[str, str] | None = None) -> None:
    """One part of a latent folder: ``latents`` (n c f h w) with the prompts' ``condition``
    (a TextCondition: embeddings, mask, and the pooled vector where the teacher has one). Written
    under a temporary name and renamed, so that a part exists exactly when it is complete."""
    path = Path(path)
    tensors = {
        "latents": latents.contiguous(),
        "text_embeds": condition.embeds.contiguous(),
        "text_mask": condition.mask.to(torch.uint8).contiguous(),
    }
    if condition.pooled is not None:
        tensors["text_pooled"] = condition.pooled.contiguous()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file({k: v.cpu() for k, v in tensors.items()}, temporary, metadata=metadata)
    os.replace(temporary, path)


def write_moving_shapes_latents(folder: str | Path, num_clips: int, seed: int, teacher) -> None:
    """Render ``num_clips`` MovingShapes clips (in [−1, 1]) with their prompt embeddings into
    ``folder``; each part is written under a temporary name and renamed, so the folder is complete
    exactly when it exists under its own name."""
    folder = Path(folder)
    if not hasattr(teacher, "text_encoder") or not hasattr(teacher, "spec"):
        raise UserError("only the tiny MovingShapes teacher can render its own latents; point latents_dir at yours.")
    building = folder.with_name(f".{folder.name}.building-{os.getpid()}")
    building.mkdir(parents=True, exist_ok=True)
    clips = MovingShapesClips(num_clips, seed, teacher.spec)
    for part, first in enumerate(tqdm(range(0, num_clips, PART_SIZE), desc="rendering latents", unit="part")):
        items = [clips[i] for i in range(first, min(first + PART_SIZE, num_clips))]
        condition = teacher.text_encoder.encode([item["prompt"] for item in items])
        write_part(building / f"part-{part:05d}.safetensors", torch.stack([item["video"] for item in items]), condition)
    os.replace(building, folder)
