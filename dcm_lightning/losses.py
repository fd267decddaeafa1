"""Training losses as small pure functions; each comment names the equation it implements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dcm_lightning.diffusion import Parameterization
from dcm_lightning.diffusion.consistency import Denoiser, consistency_target, jump


def denoising_loss(
    network: nn.Module,
    parameterization: Parameterization,
    x0: Tensor,
    eps: Tensor,
    sigma: Tensor,
    text_embeds: Tensor,
    text_mask: Tensor,
) -> Tensor:
    """Teacher pretraining: ‖net(x_σ, σ) − target(x0, ε)‖² (rectified flow: target v = ε − x0).

    x0, eps: b c f h w; sigma: (b,).
    """
    level = sigma.view(-1, 1, 1, 1, 1)
    a, b = parameterization.coefficients(level)
    x_sigma = a * x0 + b * eps
    output = network(x_sigma, parameterization.model_timestep(sigma), text_embeds, text_mask)
    return (output - parameterization.training_target(x0, eps, level)).square().mean()


def pseudo_huber(prediction: Tensor, target: Tensor, c: float = 1e-3) -> Tensor:
    """Consistency loss of iCT / DCM: mean(√((x̂ − y)² + c²) − c), elementwise."""
    return (torch.sqrt((prediction - target).square() + c * c) - c).mean()


def temporal_coherence(prediction: Tensor, target: Tensor, lag: int) -> Tensor:
    """DCM's temporal coherence loss on the frame axis of b c f h w latents:
    L_TC = mean(((x̂[l:] − x̂[:−l]) − (y[l:] − y[:−l]))²)."""
    frames = prediction.shape[2]
    if not 0 < lag < frames:
        raise ValueError(f"lag {lag} needs 0 < lag < frames ({frames})")
    predicted_motion = prediction[:, :, lag:] - prediction[:, :, :-lag]
    target_motion = target[:, :, lag:] - target[:, :, :-lag]
    return (predicted_motion - target_motion).square().mean()


@dataclass
class ConsistencyLoss:
    """One consistency step's outcome: the student's phase-end estimate x̂_e (with gradient), the
    target y (without) and the loss terms ("huber", "tc" when weighted, and their total "loss")."""

    student_end: Tensor  # b c f h w
    target: Tensor  # b c f h w
    terms: dict[str, Tensor]


def consistency_loss(
    student: Denoiser,
    target_network: Denoiser,
    parameterization: Parameterization,
    x_n: Tensor,
    x_prev: Tensor,
    sigma_n: Tensor,
    sigma_prev: Tensor,
    sigma_end: Tensor,
    huber_c: float,
    tc_lag: int,
    tc_weight: float,
) -> ConsistencyLoss:
    """docs/design.md §2 "Consistency loss": x̂_e = jump(x_n, σ_n → σ_e) with the student;
    y = jump(x_{n−1}, σ_{n−1} → σ_e) with the stop-gradient target network (y = x_{n−1} where
    σ_{n−1} = σ_e); L = pseudo-Huber(x̂_e, y) + w·L_TC(x̂_e, y)."""
    student_end = jump(student, parameterization, x_n, sigma_n, sigma_end)
    target = consistency_target(target_network, parameterization, x_prev, sigma_prev, sigma_end)
    terms = {"huber": pseudo_huber(student_end, target, huber_c)}
    terms["loss"] = terms["huber"]
    if tc_weight:
        terms["tc"] = temporal_coherence(student_end, target, tc_lag)
        terms["loss"] = terms["loss"] + tc_weight * terms["tc"]
    return ConsistencyLoss(student_end, target, terms)


# ---- the detail expert's adversarial and feature-matching terms (docs/design.md §2) ----------------------


def hinge_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """L_D = mean(relu(1 − D(real))) + mean(relu(1 + D(fake)))."""
    return torch.relu(1.0 - real_logits).mean() + torch.relu(1.0 + fake_logits).mean()


def hinge_generator_loss(fake_logits: Tensor) -> Tensor:
    """The official generator term: mean(relu(1 − D(fake))) — it stops pushing a fake that D already
    scores above 1."""
    return torch.relu(1.0 - fake_logits).mean()


def linear_generator_loss(fake_logits: Tensor) -> Tensor:
    """The unbounded generator term of many hinge GANs (and of this project's wave 1): −mean(D(fake))."""
    return -fake_logits.mean()


def non_saturating_generator_loss(fake_logits: Tensor) -> Tensor:
    """The non-saturating GAN term: mean(softplus(−D(fake))) = −mean(log σ(D(fake)))."""
    return torch.nn.functional.softplus(-fake_logits).mean()


def feature_matching(fake_features: list[Tensor], real_features: list[Tensor]) -> Tensor:
    """λ_fm's term: mean over layers of ‖Ω_k(fake) − Ω_k(real)‖² (mean over elements); the official
    code matches the blocks' features taken through the teacher's output head (latent-shaped)."""
    if len(fake_features) != len(real_features) or not fake_features:
        raise ValueError("feature matching needs the same non-empty list of layers for fake and real")
    terms = [(f - r).square().mean() for f, r in zip(fake_features, real_features, strict=True)]
    return torch.stack(terms).mean()


@dataclass
class AdversarialLosses:
    """The GAN step's totals and what is logged of them."""

    generator: Tensor  # λ_adv·L_adv + λ_fm·L_fm (the consistency loss is added by the caller)
    adversarial: Tensor
    feature_matching: Tensor
    discriminator: Tensor  # hinge on detached features
    real_logits: Tensor  # all heads' logits, flattened, detached
    fake_logits: Tensor


def adversarial_losses(
    discriminator: Callable[[list[Tensor]], list[Tensor]],
    fake_features: list[Tensor],
    real_features: list[Tensor],
    fake_matched: list[Tensor],
    real_matched: list[Tensor],
    generator_term: Callable[[Tensor], Tensor],
    adversarial_weight: float,
    feature_matching_weight: float,
) -> AdversarialLosses:
    """docs/design.md §2 "Detail expert": the generator's λ_adv·mean_k G(D_k(Ω_k(fake))) + λ_fm·L_fm on
    the matched features (``fake_matched`` vs ``real_matched``: the blocks' features through the
    teacher's output head, as the official code, or the raw ``*_features``) — gradient reaches the
    student through the fake ones — and the discriminator's hinge on the raw features detached (the
    teacher runs once per step). Both totals are built before either backward, so the caller steps
    G, then D."""
    fake_logits = discriminator(fake_features)
    adversarial = torch.stack([generator_term(logits) for logits in fake_logits]).mean()
    matching = feature_matching(fake_matched, real_matched)
    real_logits_d = discriminator([f.detach() for f in real_features])
    fake_logits_d = discriminator([f.detach() for f in fake_features])
    d_loss = torch.stack(
        [hinge_discriminator_loss(r, f) for r, f in zip(real_logits_d, fake_logits_d, strict=True)]
    ).mean()
    return AdversarialLosses(
        generator=adversarial_weight * adversarial + feature_matching_weight * matching,
        adversarial=adversarial,
        feature_matching=matching,
        discriminator=d_loss,
        real_logits=torch.cat([r.flatten() for r in real_logits_d]).detach(),
        fake_logits=torch.cat([f.flatten() for f in fake_logits_d]).detach(),
    )
