"""DetEModule: DCM's detail expert (docs/design.md §2) — LoRA + Ψ on the frozen semantic expert, trained on
[0, σ_b] with the consistency loss plus an adversarial and a feature-matching term against the frozen
teacher's features; manual optimization, one generator step then one discriminator step per batch."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from dcm_lightning.checkpoints import MODULE_KEY, load_module_state, read_checkpoint_metadata, resolve_reference
from dcm_lightning.diffusion import renoise
from dcm_lightning.diffusion.consistency import jump
from dcm_lightning.diffusion.phases import Schedule, Segment, detail_segment
from dcm_lightning.distributed import is_sharded_checkpoint
from dcm_lightning.errors import UserError
from dcm_lightning.experts import DualExpertNetwork, semantic_weight_sources
from dcm_lightning.losses import (
    adversarial_losses,
    hinge_generator_loss,
    linear_generator_loss,
    non_saturating_generator_loss,
)
from dcm_lightning.modules.consistency import ConsistencyDistillationModule, ConsistencyStep, SemEModule
from dcm_lightning.modules.dete_settings import AdversarialSpec, DetailExpertSpec, DiscriminatorSpec, settings_group
from dcm_lightning.networks.discriminator import FeatureDiscriminator, every_kth_block
from dcm_lightning.randomness import run_seed, step_generator
from dcm_lightning.sampling import denoiser
from dcm_lightning.teachers.base import VideoModel, module_fingerprint
from dcm_lightning.teachers.loading import same_teacher

STUDENT_PREFIX = "student.network."
# adversarial.loss → the generator's GAN term
GENERATOR_TERMS = {
    "hinge": hinge_generator_loss,
    "linear": linear_generator_loss,
    "non_saturating": non_saturating_generator_loss,
}


class DetEModule(ConsistencyDistillationModule):
    """The detail expert, chained from a SemE checkpoint (its teacher and κ come from there).

    The semantic expert's weights are read from that checkpoint's ``student.network.*`` entries only
    (never its optimizer states or EMA copy) into every tensor of the dual-expert student that starts
    as one: the frozen semantic network, Ψ (or the full detail copy) and the EMA target's copies.
    From a ``.ckpt`` file that happens at construction. From a sharded (FSDP2) folder it waits for
    ``configure_model`` — which Lightning calls in every Trainer entry point and in
    ``load_from_checkpoint`` — so that, under ``ModelParallelStrategy``, it lands in the already
    sharded student and each rank reads only its own shards; without a device mesh the student is
    filled from full tensors there. Loading a DetE checkpoint's own weights (``on_load_checkpoint``)
    makes that read unnecessary: ``export`` and ``sample`` never read the semantic expert's tensors.
    A module built from a sharded folder outside a Trainer holds the teacher's weights until
    ``configure_model()`` is called.

    Args:
        semantic_checkpoint: the SemEModule ``.ckpt`` (a file or a sharded folder) whose student becomes
            the frozen semantic expert.
        detail: how the detail expert is built (``DetailExpertSpec``).
        adversarial: the GAN and feature-matching terms (``AdversarialSpec``).
        discriminator: the discriminator heads and their optimizer (``DiscriminatorSpec``).
        generator_clip: gradient-norm clipping of the detail expert's step (manual optimization clips
            each step itself; ``trainer.gradient_clip_val`` does not apply).
        **kwargs: the consistency settings of ``ConsistencyDistillationModule`` (learning_rate …).
    """

    def __init__(
        self,
        semantic_checkpoint: str,
        detail: DetailExpertSpec = DetailExpertSpec(),
        adversarial: AdversarialSpec = AdversarialSpec(),
        discriminator: DiscriminatorSpec = DiscriminatorSpec(),
        generator_clip: float = 1.0,
        **kwargs,
    ) -> None:
        self.detail = settings_group(DetailExpertSpec, detail)
        self.adversarial = settings_group(AdversarialSpec, adversarial)
        self.discriminator_spec = settings_group(DiscriminatorSpec, discriminator)
        # Plain dicts in the checkpoint's hyperparameters (``save_hyperparameters`` reads these locals),
        # so that a checkpoint loads with ``weights_only``.
        detail, adversarial, discriminator = (
            dataclasses.asdict(x) for x in (self.detail, self.adversarial, self.discriminator_spec)
        )
        self._semantic = _read_semantic_checkpoint(semantic_checkpoint)
        self.boundary_index = self._semantic["boundary_index"]
        if self.adversarial.real_source == "ema" and kwargs.get("target_network", "online") != "ema":
            raise UserError("adversarial.real_source: ema uses the EMA student, so it needs target_network: ema.")
        # The teacher comes with the semantic expert; a resumed run's hyperparameters repeat it.
        if not same_teacher(kwargs.pop("teacher", self._semantic["teacher"]), self._semantic["teacher"]):
            raise UserError("the detail expert uses its semantic checkpoint's teacher; do not set another.")
        super().__init__(teacher=self._semantic["teacher"], **kwargs)
        self.automatic_optimization = False
        self.optimizer_steps_per_batch = 2  # Lightning's global_step counts both the G and the D step
        self.needs_clean_sample = self.adversarial.real_source == "teacher"
        network, spec = self.teacher.network, self.discriminator_spec
        blocks = network.discriminator_blocks  # the teacher's own: HunyuanVideo's single-stream blocks
        self.layers = every_kth_block(blocks.start, blocks.stop, spec.feature_every)
        self.discriminator = FeatureDiscriminator(
            network.feature_dim, len(self.layers), spec.hidden_dim, spec.groups, spec.slope, spec.norm
        )
        self._seed = run_seed()

    # ---- the student: frozen SemE + detail expert ---------------------------------------------------

    def build_student(self) -> VideoModel:
        if self._semantic["teacher_fingerprint"] != module_fingerprint(self.teacher.network):
            raise UserError("the semantic checkpoint was distilled from another teacher than the one it names.")
        student, spec = self.teacher.student_copy(), self.detail
        student.network = DualExpertNetwork(
            student.network,
            list(self.teacher.psi_modules if spec.psi_modules is None else spec.psi_modules),
            lora_rank=spec.lora_rank,
            lora_alpha=spec.lora_alpha,
            lora_targets=list(spec.lora_targets or self.teacher.lora_targets),
            mode=spec.mode,
        )
        # A file now (the EMA target, copied from the student next, starts from it too); a sharded
        # folder in configure_model, into the sharded networks (see the class docstring).
        self._semantic_pending = is_sharded_checkpoint(self._semantic["path"])
        if not self._semantic_pending:
            load_semantic_expert(self._semantic["path"], [student.network])
        return student

    def configure_model(self) -> None:
        self.discriminator.checkpoint_heads = self.hparams.activation_checkpointing
        super().configure_model()  # under ModelParallelStrategy: the networks are sharded now
        if self._semantic_pending:
            networks = [self.student.network]
            if self.target_ema is not None:
                networks.append(self.target_ema.average.network)
            load_semantic_expert(self._semantic["path"], networks)
            self._semantic_pending = False

    @classmethod
    def recorded_settings(cls, checkpoint, metadata) -> dict:
        settings = super().recorded_settings(checkpoint, metadata)
        recorded = settings["semantic_checkpoint"]
        settings["semantic_checkpoint"] = resolve_reference(recorded, checkpoint, metadata, "semantic_checkpoint")
        return settings

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self._semantic_pending = False  # this checkpoint's weights replace the semantic expert's

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return self.student.network.trainable_parameters()

    def networks(self) -> list[torch.nn.Module]:
        return [*super().networks(), self.discriminator]

    def training_segment(self) -> Segment:
        return detail_segment(self.boundary_index, self.teacher.num_steps)

    @property
    def schedule(self) -> Schedule:
        return Schedule.dual_expert(self.boundary_index)

    def student_kwargs(self) -> dict:
        return {"expert": "detail"}  # every training state lies in the detail range [0, σ_b]

    # ---- one generator step, then one discriminator step ---------------------------------------------

    def adversarial_inputs(self, step: ConsistencyStep, batch: dict) -> tuple[Tensor, Tensor, Tensor]:
        """Fake and real re-noised with the same ε to a σ_adv drawn per sample from the detail range
        (``adversarial.noise_levels``), at or above each sample's phase end: (fake with gradient, real
        without, σ_adv). Each data-parallel rank draws its own (``step_generator``)."""
        draw, eps = self.adversarial_noise(step.student_end.shape)
        sigma_adv = torch.maximum(self.sigma(draw), step.sigma_end)
        eps = eps.to(step.student_end)
        real_start = step.sigma_end
        if self.adversarial.real_source == "target":
            real_end = step.target
        elif self.adversarial.real_source == "teacher":  # the teacher trajectory's clean end, at σ = 0
            real_end, real_start = batch["x_clean"], torch.zeros_like(step.sigma_end)
        else:  # the EMA student's own phase-end prediction from the same x_n
            with torch.no_grad():
                ema = denoiser(self.target_ema.average, step.condition, **self.student_kwargs())
                real_end = jump(ema, self.teacher.parameterization, step.x_n, step.sigma_n, step.sigma_end)
        end = self._coefficients(sigma_adv)
        fake = renoise(step.student_end, self._coefficients(step.sigma_end), end, eps)
        real = renoise(real_end.detach(), self._coefficients(real_start), end, eps)
        return fake, real, sigma_adv

    def adversarial_noise(self, shape: torch.Size) -> tuple[Tensor, Tensor]:
        """This step's and this rank's σ_adv grid indices (b,) and re-noise ε (``shape``, b c f h w),
        from the stream (run seed, step, data-parallel rank): ranks draw apart, rank 0 as one process does."""
        generator = step_generator(self._seed, self.global_step, self.data_parallel_rank)
        levels = torch.tensor(self.segment.sample_indices())  # grid points 0..κ
        if self.adversarial.noise_levels == "below":  # official: σ_prev of each index, σ_{−1} … σ_{κ−1}
            levels = levels - 1
        draw = levels[torch.randint(len(levels), (shape[0],), generator=generator)]
        return draw, torch.randn(shape, generator=generator)

    def _coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor]:
        return self.teacher.parameterization.coefficients(sigma.view(-1, 1, 1, 1, 1))

    def teacher_features(self, x: Tensor, sigma: Tensor, step: ConsistencyStep) -> tuple[list[Tensor], list[Tensor]]:
        """Ω: the frozen teacher's hidden states at the feature blocks (conditional branch only; what
        the discriminator reads), and what feature matching compares (``feature_matching_space``: the
        same blocks through the teacher's output head, or the hidden states themselves)."""
        heads = self.adversarial.feature_matching_space == "output_head"
        prediction = self.teacher.predict(
            x, sigma, step.condition, guidance_scale=1.0, feature_blocks=self.layers, feature_heads=heads
        )
        return prediction.features, prediction.head_features if heads else prediction.features

    def training_step(self, batch: dict, batch_idx: int) -> None:
        optimizer_g, optimizer_d = self.optimizers()
        step = self.consistency_step(batch)
        if not self.adversarial.enabled:  # the ablation's rows without GAN/FM: no teacher features, no D loss
            self._consistency_only_step(step, optimizer_g, optimizer_d, batch)
            return
        fake, real, sigma_adv = self.adversarial_inputs(step, batch)
        fake_features, fake_matched = self.teacher_features(fake, sigma_adv, step)  # gradient to the student
        with torch.no_grad():
            real_features, real_matched = self.teacher_features(real, sigma_adv, step)
        frames = self.teacher.network.feature_frames(fake.shape[2])  # the heads normalize per frame
        gan = adversarial_losses(
            lambda features: self.discriminator(features, frames),
            fake_features,
            real_features,
            fake_matched,
            real_matched,
            self._generator_term,
            self.adversarial.weight,
            self.adversarial.feature_matching_weight,
        )
        # Generator: consistency (+ TC) + λ_adv·GAN + λ_fm·feature matching. Its backward also reaches
        # the discriminator's weights through the adversarial term; the D step clears those first.
        generator_loss = step.losses["loss"] + gan.generator
        accuracy = ((gan.real_logits > 0).float().mean() + (gan.fake_logits < 0).float().mean()) / 2
        gan_logs = {
            "train/adversarial": gan.adversarial.detach(),
            "train/feature_matching": gan.feature_matching.detach(),
            "train/generator_loss": generator_loss.detach(),
            "train/d_loss": gan.discriminator.detach(),
            "train/d_real": gan.real_logits.mean(),
            "train/d_fake": gan.fake_logits.mean(),
            "train/d_accuracy": accuracy,
        }
        self._log_step(step, batch, gan_logs)  # before the updates: NonFiniteGuard reads this step's terms
        self._generator_update(optimizer_g, generator_loss)
        # Discriminator: hinge on the G step's features, detached — the teacher runs no second time.
        optimizer_d.zero_grad()
        self.manual_backward(gan.discriminator)
        clip = self.discriminator_spec.clip
        self.clip_gradients(optimizer_d, gradient_clip_val=clip, gradient_clip_algorithm="norm")
        optimizer_d.step()

    def _consistency_only_step(self, step: ConsistencyStep, optimizer_g, optimizer_d, batch: dict) -> None:
        self._log_step(step, batch, {})
        self._generator_update(optimizer_g, step.losses["loss"])
        # The discriminator has no gradient and stays as it is; its step keeps two optimizer steps per
        # batch, so step counts, checkpoints and the data stream mean the same with and without GAN.
        optimizer_d.zero_grad()
        optimizer_d.step()

    def _generator_update(self, optimizer_g, loss: Tensor) -> None:
        """One clipped step of the detail expert on ``loss``, then the EMA target follows."""
        optimizer_g.zero_grad()
        self.manual_backward(loss)
        self.clip_gradients(optimizer_g, gradient_clip_val=self.hparams.generator_clip, gradient_clip_algorithm="norm")
        optimizer_g.step()
        if self.target_ema is not None:
            self.target_ema.update(self.student)

    def _log_step(self, step: ConsistencyStep, batch: dict, extra: dict[str, Tensor]) -> None:
        logs = {**{f"train/{k}": v.detach() for k, v in step.losses.items() if k != "loss"}, **extra}
        self.log_dict(logs, prog_bar=False, batch_size=len(batch["index"]))
        self.log("train/loss", step.losses["loss"].detach(), prog_bar=True, batch_size=len(batch["index"]))

    def _generator_term(self, logits: Tensor) -> Tensor:
        return GENERATOR_TERMS[self.adversarial.loss](logits)

    def configure_optimizers(self):
        generator = torch.optim.AdamW(
            self.trainable_parameters(),
            lr=self.hparams.learning_rate,
            weight_decay=self.hparams.weight_decay,
            betas=tuple(self.hparams.betas),
        )
        spec = self.discriminator_spec
        discriminator = torch.optim.AdamW(
            self.discriminator.parameters(),
            lr=spec.learning_rate,
            weight_decay=spec.weight_decay,
            betas=tuple(spec.betas),
        )
        return [generator, discriminator]


def _read_semantic_checkpoint(path: str) -> dict:
    """What the detail expert takes from a SemE checkpoint's metadata: its teacher (found from here,
    ``recorded_settings``), κ and teacher fingerprint (no weights are read here; ``load_semantic_expert``
    reads the student's)."""
    checkpoint = read_checkpoint_metadata(path)
    if checkpoint.get(MODULE_KEY) != "SemEModule":
        raise UserError(f"{path} is not a SemEModule checkpoint; the detail expert starts from a semantic expert.")
    settings = SemEModule.recorded_settings(path, checkpoint)
    return {
        "path": path,
        "teacher": settings.get("teacher"),
        "boundary_index": int(settings["boundary_index"]),
        "teacher_fingerprint": checkpoint.get("teacher_fingerprint"),
    }


def load_semantic_expert(path: str, networks: list[DualExpertNetwork]) -> None:
    """The SemE checkpoint's student network (its ``student.network.*`` weights, nothing else) into
    every tensor of the dual-expert ``networks`` that starts as one of its weights.

    Each semantic weight is read once, into the first tensor that starts from it (the frozen semantic
    network's own), and copied from there into the others (Ψ, a full detail copy, the EMA target's).
    The tensors may be FSDP2-sharded DTensors: then every rank calls this together and reads only its
    own shards (``checkpoints.load_module_state``); the copies share the layout of what they copy."""
    read: dict[str, Tensor] = {}
    copies: list[tuple[Tensor, str]] = []
    for network in networks:
        state = network.state_dict()  # tensors sharing the parameters' storage: filled in place
        for key, source in semantic_weight_sources(state).items():
            if source in read:
                copies.append((state[key], source))
            else:
                read[source] = state[key]
    load_module_state(path, read, prefix=STUDENT_PREFIX)
    with torch.no_grad():
        for tensor, source in copies:
            tensor.copy_(read[source])
