"""The CogVideoX adapter on a tiny random-weight diffusers CogVideoXTransformer3DModel."""

from __future__ import annotations

import pytest
import torch

from dcm_lightning.conditioning import TextCondition
from dcm_lightning.experts import DualExpertNetwork
from dcm_lightning.sampling import denoiser, sample
from dcm_lightning.teachers.cogvideox import CogVideoXNetwork, CogVideoXTeacher
from tests.tiny_diffusers import LATENT, tiny_scheduler, tiny_transformer


@pytest.fixture
def cogvideox():
    negative = TextCondition(torch.zeros(1, 7, 32), torch.ones(1, 7, dtype=torch.bool))
    alphas = tiny_scheduler("cogvideox").alphas_cumprod
    return CogVideoXTeacher(CogVideoXNetwork(tiny_transformer("cogvideox")), alphas, negative, LATENT)


def test_the_50_step_sample_equals_diffusers_cogvideox_ddim_loop(cogvideox):
    """CogVideoXPipeline's loop: trailing timesteps, v-prediction, CFG 6 over [negative, prompt]."""
    noise = torch.randn(2, *LATENT, generator=torch.Generator().manual_seed(2))
    text = TextCondition(
        torch.randn(2, 7, 32, generator=torch.Generator().manual_seed(1)), torch.ones(2, 7, dtype=torch.bool)
    )
    ours = sample(denoiser(cogvideox, text), cogvideox.parameterization, noise, cogvideox.sigmas())

    scheduler = tiny_scheduler("cogvideox")
    scheduler.set_timesteps(50)
    latents = noise.permute(0, 2, 1, 3, 4).clone()  # b f c h w
    prompt_embeds = torch.cat([torch.zeros(2, 7, 32), text.embeds])
    with torch.no_grad():
        for t in scheduler.timesteps:
            v = cogvideox.network.transformer(
                hidden_states=torch.cat([latents] * 2),
                encoder_hidden_states=prompt_embeds,
                timestep=t.expand(4),
                return_dict=False,
            )[0]
            uncond, conditional = v.chunk(2)
            latents = scheduler.step(uncond + 6.0 * (conditional - uncond), t, latents, return_dict=False)[0]
    torch.testing.assert_close(ours, latents.permute(0, 2, 1, 3, 4), rtol=1e-4, atol=1e-4)


def test_the_detail_expert_wraps_cogvideox(cogvideox):
    experts = DualExpertNetwork(
        cogvideox.student_copy().network,
        CogVideoXTeacher.psi_modules,
        lora_rank=4,
        lora_targets=CogVideoXTeacher.lora_targets,
    )
    names = experts.trainable_names()
    assert any("transformer_blocks.0.attn1.to_q.lora_A" in n for n in names)
    assert any(n.startswith("psi.transformer/time_embedding.") for n in names)
    x = torch.randn(2, *LATENT, generator=torch.Generator().manual_seed(3))
    args = (x, torch.tensor([900, 200]), torch.randn(2, 7, 32), torch.ones(2, 7, dtype=torch.bool))
    with torch.no_grad():
        torch.testing.assert_close(experts(*args, expert="detail"), experts(*args, expert="semantic"))
    features = cogvideox.predict(
        x, torch.tensor([0.9, 0.2]), TextCondition(args[2], args[3]), feature_blocks=[1]
    ).features
    assert [f.shape for f in features] == [(2, 5 * 4 * 4, 32)]
