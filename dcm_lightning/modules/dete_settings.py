"""The detail expert's settings, grouped (litgpt-style): each group a dataclass whose fields and
docstring are that part of the YAML schema (``model.init_args.detail`` / ``adversarial`` /
``discriminator``), checked when it is built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dcm_lightning.errors import UserError


@dataclass
class DetailExpertSpec:
    """How the detail expert is built on the frozen semantic network.

    Args:
        mode: "lora" — LoRA adapters + Ψ (DCM); "full" — a full-parameter second expert (the ablation's
            "+OD" row).
        lora_rank, lora_alpha: the adapters' r and α (official DCM: 128, 256).
        lora_targets: the projections that get adapters (None: the teacher adapter's, diffusers'
            to_q, to_k, to_v, to_out.0).
        psi_modules: the timestep-dependent modules Ψ the detail expert re-learns as trainable copies
            (None: the teacher adapter's, e.g. the tiny teacher's embedders, output modulation and output
            layers; []: adapters only; experiments/psi/README.md compares choices).
    """

    mode: Literal["lora", "full"] = "lora"
    lora_rank: int = 16
    lora_alpha: float = 32.0
    lora_targets: list[str] | None = None
    psi_modules: list[str] | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("lora", "full"):
            raise UserError(f"detail.mode must be 'lora' or 'full', got {self.mode!r}.")


@dataclass
class AdversarialSpec:
    """The GAN on the frozen teacher's features (docs/design.md §2 "GAN + feature matching").

    Args:
        loss: the generator's GAN term, "hinge" or "non_saturating".
        weight: λ_adv (official 0.1·5 = 0.5); 0 together with ``feature_matching_weight`` 0 turns the
            GAN off (the ablation's rows without it).
        feature_matching_weight: λ_fm (official 0.1·1 for Hunyuan, 0.1·10 for Wan).
        real_source: what the discriminator sees as real — "target" (the consistency target, official
            code), "ema" (the EMA student's phase-end prediction, the paper; needs ``target_network:
            ema``) or "teacher" (the end state σ = 0 of the teacher's own trajectory through x_n, from
            the cache — or the data latent for the latent source; the tiny tier's choice, see
            experiments/dete/README.md).
    """

    loss: Literal["hinge", "non_saturating"] = "hinge"
    weight: float = 0.5
    feature_matching_weight: float = 0.1
    real_source: Literal["target", "ema", "teacher"] = "target"

    def __post_init__(self) -> None:
        if self.loss not in ("hinge", "non_saturating"):
            raise UserError(f"adversarial.loss must be 'hinge' or 'non_saturating', got {self.loss!r}.")
        if self.real_source not in ("target", "ema", "teacher"):
            raise UserError(f"adversarial.real_source must be 'target', 'ema' or 'teacher', got {self.real_source!r}.")

    @property
    def enabled(self) -> bool:
        return bool(self.weight or self.feature_matching_weight)


@dataclass
class DiscriminatorSpec:
    """The discriminator heads and their optimizer.

    Args:
        feature_every: k — a head reads every k-th teacher block (official 2).
        hidden_dim: width of each head (official 1024).
        groups: GroupNorm groups of each head.
        learning_rate, betas: its AdamW (official 1e-5, (0, 0.999)).
        clip: gradient-norm clipping of its step.
    """

    feature_every: int = 2
    hidden_dim: int = 128
    groups: int = 8
    learning_rate: float = 1e-5
    betas: tuple[float, float] = (0.0, 0.999)
    clip: float = 1.0


def settings_group(cls, value):
    """A settings group from the config (the dataclass) or from a checkpoint's hyperparameters (its dict)."""
    return value if isinstance(value, cls) else cls(**value)
