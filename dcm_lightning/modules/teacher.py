"""TeacherModule: flow-matching pretraining of TinyVideoDiT on MovingShapes (the tiny tier's teacher)."""

from __future__ import annotations

import dataclasses

import lightning as L
import torch
from torch import Tensor

from dcm_lightning.checkpoints import read_lightning_checkpoint
from dcm_lightning.diffusion import shifted_sigma
from dcm_lightning.errors import UserError
from dcm_lightning.losses import denoising_loss
from dcm_lightning.moving_shapes import MovingShapesSpec, MovingShapesTextEncoder
from dcm_lightning.moving_shapes.render import spec_from_dict
from dcm_lightning.networks.ema import ExponentialMovingAverage
from dcm_lightning.networks.tiny_dit import TinyVideoDiT, tiny_dit_config
from dcm_lightning.randomness import run_seed, step_generator
from dcm_lightning.sampling import teacher_sampler
from dcm_lightning.teachers.tiny import TINY_TEACHER_KEY, TinyTeacher


class TeacherModule(L.LightningModule):
    """Trains the tiny teacher; the EMA copy is what gets exported and shipped.

    Args:
        size: TinyVideoDiT size from ``TINY_DIT_SIZES`` ("test", "cpu", "S", "B").
        patch_size: (pt, ph, pw) spatio-temporal patch.
        text_dim: width of the frozen MovingShapes text encoder's word vectors.
        shift: time shift of the teacher's σ grid (its sampler's noise levels).
        train_shift: training draws σ = shift(t) with this shift, t ~ U(0, 1); None uses ``shift``, so the
            training noise levels follow the sampler's grid density; 1.0 draws σ uniformly, which
            trains the low noise levels (fine texture) more.
        init_from: a TeacherModule ``.ckpt`` whose network and EMA weights this run starts from (a
            second training stage); None starts from scratch.
        guidance_scale: classifier-free guidance used when this teacher samples.
        num_steps: N, the teacher's number of sampling steps.
        prompt_dropout: probability of training on the null prompt (enables guidance).
        learning_rate, weight_decay, betas: AdamW.
        warmup_steps: linear learning-rate warm-up.
        ema_decay: decay of the exported weight average.
    """

    def __init__(
        self,
        size: str = "cpu",
        patch_size: tuple[int, int, int] = (2, 4, 4),
        text_dim: int = 64,
        shift: float = 3.0,
        train_shift: float | None = None,
        init_from: str | None = None,
        guidance_scale: float = 4.0,
        num_steps: int = 50,
        prompt_dropout: float = 0.1,
        learning_rate: float = 5e-4,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        warmup_steps: int = 200,
        ema_decay: float = 0.999,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.network = TinyVideoDiT(tiny_dit_config(size, patch_size=tuple(patch_size), text_dim=text_dim))
        self.ema = ExponentialMovingAverage(self.network, ema_decay)
        self.text_encoder = MovingShapesTextEncoder(dim=text_dim)
        self.spec = MovingShapesSpec()
        self._seed = run_seed()
        if init_from is not None:
            self._start_from(init_from)

    def _start_from(self, path: str) -> None:
        checkpoint = read_lightning_checkpoint(path)
        try:
            self.load_state_dict(checkpoint["state_dict"])
        except (KeyError, RuntimeError):
            raise UserError(f"{path} is not a checkpoint of a TeacherModule with this architecture.") from None

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "spec"):
            self.spec = datamodule.spec  # the clip geometry is set once, in the data config

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Plain values only, so the checkpoint stays loadable with torch.load(weights_only=True). The
        # teacher's description lets ``TinyTeacher.from_checkpoint`` read it without this module.
        checkpoint["moving_shapes_spec"] = dataclasses.asdict(self.spec)
        checkpoint[TINY_TEACHER_KEY] = self.teacher(use_ema=True).config_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.spec = spec_from_dict(checkpoint["moving_shapes_spec"])

    def teacher(self, use_ema: bool = True) -> TinyTeacher:
        """The trained network behind the common teacher interface."""
        return TinyTeacher(
            network=self.ema.average if use_ema else self.network,
            text_encoder=self.text_encoder,
            spec=self.spec,
            shift=self.hparams.shift,
            guidance_scale=self.hparams.guidance_scale,
            num_steps=self.hparams.num_steps,
        )

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        x0 = batch["video"]  # b c f h w in [−1, 1]
        generator = step_generator(self._seed, self.global_step, self.global_rank)
        keep = torch.rand(len(batch["prompt"]), generator=generator) >= self.hparams.prompt_dropout
        prompts = [p if k else "" for p, k in zip(batch["prompt"], keep.tolist(), strict=True)]
        condition = self.text_encoder.encode(prompts).to(self.device)
        t = torch.rand(x0.shape[0], generator=generator)
        eps = torch.randn(x0.shape, generator=generator)
        train_shift = self.hparams.shift if self.hparams.train_shift is None else self.hparams.train_shift
        sigma = shifted_sigma(t, train_shift).to(self.device, x0.dtype)
        loss = denoising_loss(
            self.network, TinyTeacher.parameterization, x0, eps.to(x0), sigma, condition.embeds, condition.mask
        )
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        # Here rather than in on_train_batch_end: checkpoint callbacks run before that hook, and a
        # checkpoint must hold the average that includes this step for resumes to be exact.
        self.ema.update(self.network)

    @torch.no_grad()
    def sample(self, prompts: list[str], seeds: list[int], steps: int | None = None) -> Tensor:
        """Videos (b c f h w in [0, 1]) of the EMA teacher's sampler (default: its N steps) with its
        guidance, each from the seeded noise of its seed (for callbacks: OracleSamples)."""
        return teacher_sampler(self.teacher(use_ema=True), steps).videos(prompts, seeds)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(
            self.network.parameters(),
            lr=self.hparams.learning_rate,
            weight_decay=self.hparams.weight_decay,
            betas=tuple(self.hparams.betas),
        )
        warmup = max(1, self.hparams.warmup_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
