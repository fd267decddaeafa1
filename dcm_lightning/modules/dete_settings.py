"""The detail expert's settings, grouped (litgpt-style): each group a dataclass whose fields and
docstring are that part of the YAML schema (``model.init_args.detail`` / ``adversarial`` /
``discriminator``), checked when it is built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dcm_lightning.errors import UserError, check_settings


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
        check_settings(
            **{"detail.lora_rank": (self.lora_rank, 1, None), "detail.lora_alpha": (self.lora_alpha, 1e-12, None)}
        )


@dataclass
class AdversarialSpec:
    """The GAN on the frozen teacher's features (docs/design.md §2 "GAN + feature matching"). Every
    default is the official recipe's (Vchitect/DCM, the detail-expert scripts); the other values are
    kept as named choices (that section says where and why they differ).

    Args:
        loss: the generator's GAN term: "hinge" (official: mean relu(1 − D(fake))), "linear"
            (−mean D(fake), unbounded; wave 1's) or "non_saturating" (mean softplus(−D(fake))).
        weight: λ_adv (official 0.1·5 = 0.5); 0 together with ``feature_matching_weight`` 0 turns the
            GAN off (the ablation's rows without it).
        feature_matching_weight: λ_fm (official 0.1·1 for Hunyuan, 0.1·10 for Wan).
        feature_matching_space: what feature matching compares: "output_head" (official: each feature
            block's hidden states taken through the teacher's output head — norm, projection,
            unpatchify — into latent-shaped tensors) or "hidden" (the raw hidden states the
            discriminator reads; on the tiny teacher 50–320× larger).
        real_source: what the discriminator sees as real — "target" (the consistency target, official
            code), "ema" (the EMA student's phase-end prediction, the paper; needs ``target_network:
            ema``) or "teacher" (the end state σ = 0 of the teacher's own trajectory through x_n, from
            the cache — or the data latent for the latent source; see experiments/dete/README.md).
        noise_levels: where σ_adv is drawn: "below" (official: the grid level one step below each
            detail-range index, σ_{−1} … σ_{κ−1}, where σ_{−1} is the clean end 0 — the official's
            σ(0.001)) or "detail_range" (σ_0 … σ_κ; wave 1's).
    """

    loss: Literal["hinge", "linear", "non_saturating"] = "hinge"
    weight: float = 0.5
    feature_matching_weight: float = 0.1
    feature_matching_space: Literal["output_head", "hidden"] = "output_head"
    real_source: Literal["target", "ema", "teacher"] = "target"
    noise_levels: Literal["below", "detail_range"] = "below"

    def __post_init__(self) -> None:
        choices = {
            "loss": ("hinge", "linear", "non_saturating"),
            "feature_matching_space": ("output_head", "hidden"),
            "real_source": ("target", "ema", "teacher"),
            "noise_levels": ("below", "detail_range"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                options = ", ".join(repr(a) for a in allowed)
                raise UserError(f"adversarial.{name} must be one of {options}, got {getattr(self, name)!r}.")
        check_settings(
            **{
                "adversarial.weight": (self.weight, 0.0, None),
                "adversarial.feature_matching_weight": (self.feature_matching_weight, 0.0, None),
            }
        )

    @property
    def enabled(self) -> bool:
        return bool(self.weight or self.feature_matching_weight)


@dataclass
class DiscriminatorSpec:
    """The discriminator heads and their optimizer (defaults: the official recipe's, except the
    head width, which the real configs set to the official 1024).

    Args:
        feature_every: k — a head reads every k-th of the teacher's discriminator blocks, counted from
            the first (official 2: Wan blocks 0, 2, …, 28; HunyuanVideo single-stream blocks 0, 2, …, 38).
        hidden_dim: width of each head (official 1024).
        groups: GroupNorm groups of each head (official 32).
        slope: LeakyReLU negative slope (official: torch's default 0.01).
        norm: GroupNorm statistics per latent frame ("frame", official) or over the whole clip ("video").
        learning_rate, betas, weight_decay: its AdamW (official 1e-5, (0, 0.999), 1e-3).
        clip: gradient-norm clipping of its step.
    """

    feature_every: int = 2
    hidden_dim: int = 128
    groups: int = 32
    slope: float = 0.01
    norm: Literal["frame", "video"] = "frame"
    learning_rate: float = 1e-5
    betas: tuple[float, float] = (0.0, 0.999)
    weight_decay: float = 1e-3
    clip: float = 1.0

    def __post_init__(self) -> None:
        if self.feature_every < 1:
            raise UserError(f"discriminator.feature_every must be at least 1, got {self.feature_every}.")
        if self.hidden_dim % self.groups:
            raise UserError(
                f"discriminator.hidden_dim {self.hidden_dim} is not divisible by its GroupNorm groups {self.groups}."
            )
        if self.norm not in ("frame", "video"):
            raise UserError(f"discriminator.norm must be 'frame' or 'video', got {self.norm!r}.")
        check_settings(
            **{
                "discriminator.learning_rate": (self.learning_rate, 1e-12, None),
                "discriminator.weight_decay": (self.weight_decay, 0.0, None),
                "discriminator.clip": (self.clip, 1e-12, None),
                "discriminator.hidden_dim": (self.hidden_dim, 1, None),
            }
        )


def settings_group(cls, value):
    """A settings group from the config (the dataclass) or from a checkpoint's hyperparameters (its dict)."""
    return value if isinstance(value, cls) else cls(**value)
