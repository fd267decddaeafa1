"""Phased consistency distillation of a single-model student (docs/design.md §2).

``ConsistencyDistillationModule`` holds what every single-model student shares: the frozen teacher,
the student initialized from it, the stop-gradient target network, the pseudo-Huber and temporal
coherence losses, AdamW and ``sample`` (the student's videos, for callbacks). Its subclasses only say which grid
points the student owns and how it samples: ``SemEModule`` (DCM's semantic expert on (σ_b, 1]) and
``PhasedConsistencyModule`` (the LCM / PCM baselines over the whole trajectory). ``DetEModule``
(dete.py) adds its adversarial step on top of the same consistency step.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from torch import Tensor

from dcm_lightning.checkpoints import MODULE_KEY, WORKING_DIRECTORY_KEY, resolve_reference
from dcm_lightning.conditioning import TextCondition
from dcm_lightning.context_parallel import context_group, sum_gradients_over_context
from dcm_lightning.diffusion import DEFAULT_BOUNDARY_INDEX, sigma_at
from dcm_lightning.diffusion.consistency import jump
from dcm_lightning.diffusion.phases import Schedule, Segment, semantic_segment, split_trajectory, whole_trajectory
from dcm_lightning.distributed import data_parallel_rank, data_parallel_size, fsdp_mesh, shard_network
from dcm_lightning.errors import UserError, check_settings
from dcm_lightning.losses import consistency_loss
from dcm_lightning.networks.ema import ExponentialMovingAverage
from dcm_lightning.sampling import denoiser, student_sampler
from dcm_lightning.teachers.base import VideoModel, module_fingerprint
from dcm_lightning.teachers.loading import load_teacher, teacher_reference
from dcm_lightning.teachers.pretrained import DiffusersTeacherConfig


@dataclass
class ConsistencyStep:
    """What one consistency step computed; the detail expert builds its GAN terms on it."""

    condition: TextCondition
    x_n: Tensor  # b c f h w
    sigma_n: Tensor  # (b,)
    sigma_end: Tensor  # (b,)
    student_end: Tensor  # x̂_e, with gradient
    target: Tensor  # y, without gradient
    losses: dict[str, Tensor]


class ConsistencyDistillationModule(L.LightningModule, abc.ABC):
    """A student distilled from a teacher's ODE with the phased consistency target.

    Each training batch holds, per sample, a state ``x_n`` at grid index ``n`` (drawn by the data module
    from ``training_indices()``) and the teacher's next state ``x_prev`` at index n − 1; without
    ``x_prev`` (the pre-encoded latent source) the module takes that teacher step itself.

    Args:
        teacher: a tiny-teacher folder or TeacherModule ``.ckpt`` (None: the shipped tiny teacher), or a
            real teacher's diffusers pipeline folder with its video size and sampler
            (``DiffusersTeacherConfig``: path, num_frames, height, width, shift …).
        target_network: "online" — the student itself without gradient (official DCM code); "ema" — an
            exponential moving average of the student.
        target_ema_decay: decay of the "ema" target network.
        huber_c: c of the pseudo-Huber consistency loss.
        tc_lag: lag l (latent frames) of the temporal coherence loss.
        tc_weight: weight of the temporal coherence loss; 0 turns it off.
        learning_rate, weight_decay, betas: AdamW over the student (clipping: ``trainer.gradient_clip_val``).
        val_steps: the student's default sampling steps (samples during training, ``sample``, export).
        activation_checkpointing: recompute each transformer block's activations in backward (teacher
            and student), trading compute for memory (the real-teacher configs turn it on).
    """

    needs_clean_sample: bool = False  # batches carry "x_clean", the trajectory's end (σ = 0)
    optimizer_steps_per_batch: int = 1  # Lightning's global_step advances this much per batch

    def __init__(
        self,
        teacher: str | DiffusersTeacherConfig | None = None,
        target_network: Literal["online", "ema"] = "online",
        target_ema_decay: float = 0.95,
        huber_c: float = 1e-3,
        tc_lag: int = 3,
        tc_weight: float = 0.0,
        learning_rate: float = 1e-5,
        weight_decay: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        val_steps: int = 4,
        activation_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        check_settings(
            learning_rate=(learning_rate, 1e-12, None),
            weight_decay=(weight_decay, 0.0, None),
            huber_c=(huber_c, 1e-12, None),
            tc_lag=(tc_lag, 1, None),
            tc_weight=(tc_weight, 0.0, None),
            target_ema_decay=(target_ema_decay, 0.0, 1.0),
            val_steps=(val_steps, 1, None),
        )
        teacher = teacher_reference(teacher)  # plain data in the checkpoint's hyperparameters
        self.save_hyperparameters()
        if target_network not in ("online", "ema"):
            raise UserError(f"target_network must be 'online' or 'ema', got {target_network!r}.")
        # The frozen teacher is held outside the module tree: no checkpoint, optimizer or FSDP state
        # dict holds its weights (13 B for HunyuanVideo); ``_apply`` moves it with the module.
        self.__dict__["teacher"] = load_teacher(teacher).requires_grad_(False).eval()
        self.student = self.build_student()
        self.target_ema = ExponentialMovingAverage(self.student, target_ema_decay) if target_network == "ema" else None
        self.segment = self.training_segment()
        self.teacher_fingerprint = module_fingerprint(self.teacher.network)
        self._configured = False

    # ---- what a subclass says ----------------------------------------------------------------

    def build_student(self) -> VideoModel:
        """The network being distilled, behind the teacher interface: by default a copy of the teacher."""
        return self.teacher.student_copy()

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.student.network.parameters())

    @abc.abstractmethod
    def training_segment(self) -> Segment:
        """The grid points this student is trained on and where each phase ends."""

    @property
    @abc.abstractmethod
    def schedule(self) -> Schedule:
        """How this student's sampler places its steps; saved on export."""

    def sampling_indices(self, num_steps: int) -> list[int]:
        """The grid indices a ``num_steps`` sampler of this student visits (then σ = 0)."""
        return self.schedule.indices(self.teacher.num_steps, num_steps)

    def student_kwargs(self) -> dict:
        """What every training call of the student network adds (the detail expert: which expert)."""
        return {}

    def training_indices(self) -> list[int]:
        """Grid indices n the data module draws training states at; each needs the state at n − 1 too."""
        return list(self.segment.sample_indices())

    # ---- scale: activation checkpointing and FSDP2 -----------------------------------------------

    def networks(self) -> list[torch.nn.Module]:
        """Every network this module holds: each is one FSDP2 root (its blocks are units of their own)."""
        return self.split_networks()

    def configure_model(self) -> None:
        """Activation checkpointing per block when asked; under ``ContextParallelStrategy`` the
        teacher's, student's and target's tokens split over the context-parallel group (their family's
        plan, context_parallel.py) and the student's gradient shares summed over it; under either
        strategy each network sharded with ``fully_shard`` per block (``distributed.shard_network``)."""
        if self._configured:  # Lightning calls this again for each trainer entry point
            return
        self._configured = True
        if self.hparams.activation_checkpointing:
            for network in (self.teacher.network, self.student.network):
                network.enable_activation_checkpointing()
        context = context_group(self.device_mesh)
        if context is not None:  # before sharding: the split hooks sit outside FSDP2's
            for network in self.split_networks():
                if not hasattr(network, "enable_context_parallel"):
                    raise UserError(
                        f"context parallelism needs a diffusers teacher; {type(network).__name__} has none."
                    )
                network.enable_context_parallel(context)
        mesh = fsdp_mesh(self.device_mesh)
        if mesh is not None:
            for network in self.networks():
                shard_network(network, mesh)
        if context is not None:
            sum_gradients_over_context(self.student.network, data_parallel_size(self.device_mesh))

    @property
    def data_parallel_rank(self) -> int:
        """This rank among the data-parallel groups: the ranks of a context-parallel group hold one
        sample and draw one noise (without a trainer: the global rank)."""
        return self.global_rank if self._trainer is None else data_parallel_rank(self.trainer)[0]

    def split_networks(self) -> list[torch.nn.Module]:
        """The networks whose tokens a context-parallel group splits: the teacher's, the student's and
        the target's (the discriminator heads read gathered features)."""
        networks = [self.teacher.network, self.student.network]
        return networks + ([self.target_ema.average.network] if self.target_ema is not None else [])

    # ---- training ----------------------------------------------------------------------------

    def sigma(self, indices: Tensor) -> Tensor:
        return sigma_at(indices, self.teacher.sigmas()).to(self.device, torch.float32)

    def teacher_step(self, x_n: Tensor, sigma_n: Tensor, sigma_prev: Tensor, condition: TextCondition) -> Tensor:
        """One online teacher step x_n → x_{n−1} (with the teacher's guidance)."""
        return jump(denoiser(self.teacher, condition), self.teacher.parameterization, x_n, sigma_n, sigma_prev)

    def consistency_step(self, batch: dict) -> ConsistencyStep:
        """``losses.consistency_loss`` on a batch: states x_n at grid indices n, the teacher's x_{n−1}
        (from the cache, or one online teacher step), each sample's phase end σ_e."""
        x_n = batch["x_n"]  # b c f h w
        index = batch["index"]  # (b,) grid indices n
        condition = TextCondition(batch["text_embeds"], batch["text_mask"].bool(), batch.get("text_pooled"))
        phase_end = torch.tensor([self.segment.phase_end(int(n)) for n in index])
        sigma_n, sigma_prev, sigma_end = self.sigma(index.cpu()), self.sigma(index.cpu() - 1), self.sigma(phase_end)
        x_prev = batch.get("x_prev")
        if x_prev is None:
            x_prev = self.teacher_step(x_n, sigma_n, sigma_prev, condition)
        target_model = self.student if self.target_ema is None else self.target_ema.average
        hp = self.hparams
        result = consistency_loss(
            denoiser(self.student, condition, **self.student_kwargs()),
            denoiser(target_model, condition, **self.student_kwargs()),
            self.teacher.parameterization,
            x_n,
            x_prev,
            sigma_n,
            sigma_prev,
            sigma_end,
            hp.huber_c,
            hp.tc_lag,
            hp.tc_weight,
        )
        return ConsistencyStep(condition, x_n, sigma_n, sigma_end, result.student_end, result.target, result.terms)

    def consistency_losses(self, batch: dict) -> dict[str, Tensor]:
        return self.consistency_step(batch).losses

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        losses = self.consistency_losses(batch)
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=True, batch_size=len(batch["index"]))
        return losses["loss"]

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        # Before the checkpoint callbacks run, so a resumed run continues from the same target.
        if self.target_ema is not None:
            self.target_ema.update(self.student)

    def configure_optimizers(self):
        return torch.optim.AdamW(
            self.trainable_parameters(),
            lr=self.hparams.learning_rate,
            weight_decay=self.hparams.weight_decay,
            betas=tuple(self.hparams.betas),
        )

    # ---- samples (for callbacks: the tiny tier's OracleSamples) ---------------------------------

    @torch.no_grad()
    def sample(self, prompts: list[str], seeds: list[int], steps: int | None = None) -> Tensor:
        """Videos (b c f h w in [0, 1]) of the student's ``steps``-step sampler (default ``val_steps``),
        each from the seeded noise of its seed."""
        return student_sampler(self.student, self.schedule, steps or self.hparams.val_steps).videos(prompts, seeds)

    # ---- the hidden teacher follows the module; checkpoints name it by fingerprint ---------------

    def _apply(self, fn, recurse: bool = True):
        # .to(device), .half() …: what a child module would get (the teacher is no child, see __init__).
        super()._apply(fn, recurse)
        if recurse:
            self.teacher._apply(fn)
        return self

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["teacher_fingerprint"] = self.teacher_fingerprint
        checkpoint[MODULE_KEY] = type(self).__name__
        checkpoint[WORKING_DIRECTORY_KEY] = os.getcwd()  # where the relative paths of the settings start

    @classmethod
    def recorded_settings(cls, checkpoint: str | Path, metadata: Mapping) -> dict:
        """The constructor settings a checkpoint of this module recorded, with each path among them
        (the teacher's folder or checkpoint) found from wherever it is loaded
        (``checkpoints.resolve_reference``): a run folder can be moved or shared with what it names."""
        settings = {k: v for k, v in metadata.get("hyper_parameters", {}).items() if not k.startswith("_")}
        teacher = settings.get("teacher")
        if isinstance(teacher, str):
            settings["teacher"] = resolve_reference(teacher, checkpoint, metadata, "teacher")
        elif isinstance(teacher, dict) and teacher.get("path"):
            found = resolve_reference(teacher["path"], checkpoint, metadata, "teacher.path")
            settings["teacher"] = {**teacher, "path": found}
        return settings

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if checkpoint.get("teacher_fingerprint") != self.teacher_fingerprint:
            raise UserError(
                "this checkpoint was distilled from another teacher than the one configured; "
                "point `teacher` at the teacher it was trained from."
            )


class SemEModule(ConsistencyDistillationModule):
    """DCM's semantic expert: full-parameter student on (σ_b, 1] with temporal coherence.

    Args:
        boundary_index: κ, the expert boundary grid index (σ_b = σ_κ); also places the validation
            sampler's 2 + 2 split.
        num_phases: phases of the semantic segment (official DCM: 1).
        tc_weight: weight of the temporal coherence loss (DCM: 1).
    """

    def __init__(
        self,
        boundary_index: int = DEFAULT_BOUNDARY_INDEX,
        num_phases: int = 1,
        tc_weight: float = 1.0,
        **kwargs,
    ) -> None:
        self.boundary_index = boundary_index
        self.num_phases = num_phases
        super().__init__(tc_weight=tc_weight, **kwargs)

    def training_segment(self) -> Segment:
        return semantic_segment(self.boundary_index, self.teacher.num_steps, self.num_phases)

    @property
    def schedule(self) -> Schedule:
        # DCM's split schedule; until a detail expert exists, this student also runs the detail steps.
        return Schedule.dual_expert(self.boundary_index)


class VanillaConsistencyModule(ConsistencyDistillationModule):
    """The ablation's VCM (docs/design.md §2 "Ablation rows"): one full-parameter student over the whole
    trajectory with DCM's phase ends (σ_b and 0) and DCM's 2 + 2 sampler — DCM without the decoupling
    into a semantic and a detail expert.

    Args:
        boundary_index: κ, where the two phases meet (as SemE's).
    """

    def __init__(self, boundary_index: int = DEFAULT_BOUNDARY_INDEX, **kwargs) -> None:
        self.boundary_index = boundary_index
        super().__init__(**kwargs)

    def training_segment(self) -> Segment:
        return split_trajectory(self.boundary_index, self.teacher.num_steps)

    @property
    def schedule(self) -> Schedule:
        return Schedule.dual_expert(self.boundary_index)


class PhasedConsistencyModule(ConsistencyDistillationModule):
    """The baselines: one student over the whole trajectory, ending at σ = 0 — LCM with
    ``num_phases: 1``, PCM with ``num_phases: 4`` (one phase per sampling step).

    Args:
        num_phases: P, the phases the trajectory is split into.
    """

    def __init__(self, num_phases: int = 1, **kwargs) -> None:
        self.num_phases = num_phases
        super().__init__(**kwargs)

    def training_segment(self) -> Segment:
        return whole_trajectory(self.teacher.num_steps, self.num_phases)

    @property
    def schedule(self) -> Schedule:
        return Schedule.phased(self.num_phases)
