"""The Wan2.1 adapter on a tiny random-weight diffusers WanTransformer3DModel."""

from __future__ import annotations

import pytest
import torch

from dcm_lightning.conditioning import TextCondition
from dcm_lightning.experts import DualExpertNetwork
from dcm_lightning.sampling import denoiser, sample
from dcm_lightning.teachers.wan import WanNetwork, WanTeacher
from tests.tiny_diffusers import LATENT, tiny_transformer


@pytest.fixture
def wan():
    negative = TextCondition(torch.zeros(1, 7, 32), torch.ones(1, 7, dtype=torch.bool))
    network = WanNetwork(tiny_transformer("wan"))
    return WanTeacher(network, negative, LATENT, shift=3.0, guidance_scale=5.0, num_steps=10)


def _text(batch: int = 2) -> TextCondition:
    mask = torch.ones(batch, 7, dtype=torch.bool)
    mask[1:, 5:] = False
    return TextCondition(torch.randn(batch, 7, 32, generator=torch.Generator().manual_seed(1)), mask)


def test_predictions_are_the_transformers_flow_velocity_with_wans_cfg(wan):
    x = torch.randn(2, *LATENT, generator=torch.Generator().manual_seed(2))
    sigma = torch.tensor([0.9, 0.4])
    text = _text()
    prediction = wan.predict(x, sigma, text, feature_blocks=[1, 3])
    with torch.no_grad():
        padded = text.embeds * text.mask.unsqueeze(-1)
        cond = wan.network.transformer(x, 1000 * sigma, padded, return_dict=False)[0]
        uncond = wan.network.transformer(x, 1000 * sigma, torch.zeros(2, 7, 32), return_dict=False)[0]
    v = uncond + 5.0 * (cond - uncond)  # WanPipeline's guidance
    s = sigma.view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(prediction.x0, x - s * v, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(prediction.eps, x + (1 - s) * v, rtol=1e-4, atol=1e-5)
    assert [f.shape for f in prediction.features] == [(2, 5 * 4 * 4, 32)] * 2


def test_the_detail_expert_wraps_wan_with_lora_and_its_timestep_layers(wan):
    student = wan.student_copy()
    assert student.guidance_scale == 1.0 and wan.guidance_scale == 5.0
    assert student.network is not wan.network
    experts = DualExpertNetwork(
        student.network, WanTeacher.psi_modules, lora_rank=4, lora_alpha=8.0, lora_targets=WanTeacher.lora_targets
    )
    names = experts.trainable_names()
    assert any("blocks.0.attn1.to_q.lora_A" in n for n in names)
    # Ψ as the official Wan detail expert: the whole condition embedder (text projection included) and
    # proj_out are copied; scale_shift_table stays shared and frozen.
    assert any(n.startswith("psi.transformer/condition_embedder.text_embedder.") for n in names)
    assert any(n.startswith("psi.transformer/condition_embedder.time_proj.") for n in names)
    assert any(n.startswith("psi.transformer/proj_out.") for n in names)
    assert not any("scale_shift_table" in n for n in names)
    x = torch.randn(2, *LATENT, generator=torch.Generator().manual_seed(3))
    args = (x, torch.tensor([900.0, 300.0]), _text().embeds, _text().mask)
    with torch.no_grad():
        torch.testing.assert_close(experts(*args, expert="detail"), experts(*args, expert="semantic"))
    assert 0 < experts.trainable_fraction() < 1


def test_a_few_step_student_and_the_guided_teacher_sample_from_the_same_noise(wan):
    noise = torch.randn(1, *LATENT, generator=torch.Generator().manual_seed(4))
    text = _text(1)
    teacher_video = sample(denoiser(wan, text), wan.parameterization, noise, wan.sigmas())
    student = wan.student_copy()
    student_video = sample(denoiser(student, text), student.parameterization, noise, wan.sigmas()[::5])
    assert teacher_video.shape == student_video.shape == noise.shape
    assert torch.isfinite(teacher_video).all() and not torch.equal(teacher_video, student_video)


def test_the_50_step_sample_equals_diffusers_flow_match_euler_loop_with_cfg(wan):
    """Euler on Wan's flow ODE (WanPipeline's default UniPC is a higher-order solver of the same ODE):
    FlowMatchEulerDiscreteScheduler(shift 3) over 50 steps, CFG 5 against the negative prompt's
    embeddings, padded text tokens zeroed as WanPipeline zero-pads them."""
    import numpy as np
    from diffusers import FlowMatchEulerDiscreteScheduler

    teacher = WanTeacher(wan.network, wan.negative, LATENT, shift=3.0, guidance_scale=5.0, num_steps=50)
    noise = torch.randn(2, *LATENT, generator=torch.Generator().manual_seed(5))
    text = _text()
    ours = sample(denoiser(teacher, text), teacher.parameterization, noise, teacher.sigmas())

    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 0.0, 51)[:-1])
    transformer = wan.network.transformer
    prompt = text.embeds * text.mask.unsqueeze(-1)
    negative = (wan.negative.embeds * wan.negative.mask.unsqueeze(-1)).expand(2, -1, -1)
    latents = noise.clone()
    with torch.no_grad():
        for t in scheduler.timesteps:
            timestep = t.expand(2)
            conditional = transformer(hidden_states=latents, timestep=timestep, encoder_hidden_states=prompt)[0]
            unconditional = transformer(hidden_states=latents, timestep=timestep, encoder_hidden_states=negative)[0]
            v = unconditional + 5.0 * (conditional - unconditional)
            latents = scheduler.step(v, t, latents, return_dict=False)[0]
    torch.testing.assert_close(ours, latents, rtol=1e-4, atol=1e-4)
