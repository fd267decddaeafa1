"""The tiny tier's teacher: TinyVideoDiT trained by this project on MovingShapes, shipped with the package.

A pretrained teacher is a folder with ``config.json`` (architecture, shift, guidance, text encoder,
clip geometry, provenance) and ``model.safetensors``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from dcm_lightning.checkpoints import read_lightning_checkpoint
from dcm_lightning.conditioning import TextCondition
from dcm_lightning.diffusion import FlowMatching, teacher_sigmas
from dcm_lightning.errors import UserError
from dcm_lightning.moving_shapes import MovingShapesSpec, MovingShapesTextEncoder
from dcm_lightning.moving_shapes.render import spec_from_dict
from dcm_lightning.networks.tiny_dit import TinyDiTConfig, TinyVideoDiT
from dcm_lightning.teachers.base import LORA_TARGETS, Prediction, guided_prediction

SHIPPED_TINY_TEACHER = Path(__file__).parent / "weights" / "tiny_teacher"
TINY_TEACHER_KEY = "tiny_teacher"  # a TeacherModule checkpoint's description of its teacher (``config_dict``)


class TinyTeacher(nn.Module):
    """Flow-matching adapter around TinyVideoDiT: network v → (x̂0, ε̂), with classifier-free guidance."""

    parameterization = FlowMatching()
    fps = 8
    display_upscale = 4  # 32×32 clips are written 4× enlarged, so that players show them (a tiny-tier choice)
    # Ψ: the network's top-level layers that see the timestep (or are the output head); the detail
    # expert trains fresh copies of them. Each teacher adapter names its own architecture's.
    lora_targets = LORA_TARGETS
    psi_modules = ("time_embedder", "pooled_text_embedder", "norm_out_modulation", "proj_out", "input_skip", "refine")

    def __init__(
        self,
        network: TinyVideoDiT,
        text_encoder: MovingShapesTextEncoder,
        spec: MovingShapesSpec,
        shift: float,
        guidance_scale: float,
        num_steps: int = 50,
    ) -> None:
        super().__init__()
        self.network = network
        self.text_encoder = text_encoder
        self.spec = spec
        self.shift = shift
        self.guidance_scale = guidance_scale
        self.num_steps = num_steps

    # ---- the VideoModel interface ------------------------------------------------------

    def encode_prompts(self, prompts: Sequence[str], open_vocabulary: bool = False) -> TextCondition:
        return self.text_encoder.encode(list(prompts), open_vocabulary).to(self.device)

    def latent_shape(self) -> tuple[int, int, int, int]:
        """``c f h w`` of one sample; the tiny tier diffuses RGB pixels in [−1, 1] directly."""
        return (self.network.config.in_channels, self.spec.frames, self.spec.height, self.spec.width)

    def video_shape(self) -> tuple[int, int, int, int]:
        return self.latent_shape()

    def sigmas(self, num_steps: int | None = None) -> Tensor:
        """The sampler's N + 1 levels (or those of a ``num_steps`` sampler), descending to 0."""
        return teacher_sigmas(num_steps or self.num_steps, self.shift)

    def predict(
        self,
        x: Tensor,
        sigma: Tensor,
        condition: TextCondition,
        guidance_scale: float | None = None,
        feature_blocks: Sequence[int] = (),
        feature_heads: bool = False,
        **network_kwargs,
    ) -> Prediction:
        """x: b c f h w at noise level sigma: (b,). Features are those of the conditional branch;
        ``network_kwargs`` reach the network (a dual-expert student's ``expert``)."""
        scale = self.guidance_scale if guidance_scale is None else guidance_scale
        null = self.text_encoder.encode([""] * len(condition)).to(x.device)
        return guided_prediction(
            self.network,
            self.parameterization,
            x,
            sigma,
            condition,
            null,
            scale,
            feature_blocks,
            feature_heads,
            **network_kwargs,
        )

    def decode(self, latents: Tensor) -> Tensor:
        """Latents (b c f h w in [−1, 1]) → videos in [0, 1]."""
        return ((latents + 1.0) / 2.0).clamp(0.0, 1.0)

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def student_copy(self) -> TinyTeacher:
        """A trainable copy to distill into: same weights, guidance distilled (scale 1, one forward)."""
        student = copy.deepcopy(self)
        student.guidance_scale = 1.0
        student.requires_grad_(True).train()
        return student

    # ---- persistence -----------------------------------------------------------------------

    def config_dict(self, provenance: dict | None = None) -> dict:
        return {
            "kind": "tiny",
            "network": self.network.config.to_dict(),
            "text_encoder": {
                "dim": self.text_encoder.dim,
                "max_tokens": self.text_encoder.max_tokens,
                "seed": self.text_encoder.seed,
            },
            "spec": dataclasses.asdict(self.spec),
            "shift": self.shift,
            "guidance_scale": self.guidance_scale,
            "num_steps": self.num_steps,
            "provenance": provenance or {},
        }

    def save_pretrained(self, folder: str | Path, provenance: dict | None = None, dtype=torch.float16) -> None:
        """Write ``config.json`` and ``model.safetensors`` (half precision keeps the package small)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to(dtype).contiguous() for k, v in self.network.state_dict().items()}
        save_file(state, folder / "model.safetensors")
        (folder / "config.json").write_text(json.dumps(self.config_dict(provenance), indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, folder: str | Path | None = None) -> TinyTeacher:
        """Load a saved teacher folder (default: the one shipped inside the package)."""
        folder = Path(folder) if folder is not None else SHIPPED_TINY_TEACHER
        config_path, weights_path = folder / "config.json", folder / "model.safetensors"
        if not config_path.is_file() or not weights_path.is_file():
            raise UserError(f"{folder} is not a tiny-teacher folder: it needs config.json and model.safetensors.")
        try:
            config, weights = json.loads(config_path.read_text()), load_file(weights_path)
        except Exception as error:  # invalid JSON, a truncated safetensors file (SafetensorError)
            raise UserError(f"{folder} is not a readable tiny-teacher folder ({type(error).__name__}).") from None
        return cls.from_config(config, weights)

    @classmethod
    def from_checkpoint(cls, path: str | Path, checkpoint: dict | None = None) -> TinyTeacher:
        """The EMA teacher of a TeacherModule ``fit`` checkpoint (its ``tiny_teacher`` description and
        ``ema.average.*`` weights); ``checkpoint``: the file already read."""
        checkpoint = read_lightning_checkpoint(path) if checkpoint is None else checkpoint
        if TINY_TEACHER_KEY not in checkpoint:
            raise UserError(f"{path} is not a TeacherModule checkpoint (it has no tiny-teacher description).")
        prefix = "ema.average."
        state = {k.removeprefix(prefix): v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
        try:
            return cls.from_config(checkpoint[TINY_TEACHER_KEY], state)
        except RuntimeError:
            raise UserError(f"{path} holds weights of another architecture than its description says.") from None

    @classmethod
    def from_config(cls, config: dict, state: dict[str, Tensor]) -> TinyTeacher:
        """A frozen teacher from its ``config_dict()`` and its network's weights."""
        network = TinyVideoDiT(TinyDiTConfig.from_dict(config["network"]))
        network.load_state_dict({k: v.float() for k, v in state.items()})
        network.requires_grad_(False).eval()
        return cls(
            network=network,
            text_encoder=MovingShapesTextEncoder(**config["text_encoder"]),
            spec=spec_from_dict(config["spec"]),
            shift=config["shift"],
            guidance_scale=config["guidance_scale"],
            num_steps=config["num_steps"],
        )
