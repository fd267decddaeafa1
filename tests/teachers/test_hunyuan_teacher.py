"""The HunyuanVideo adapter on a tiny random-weight diffusers HunyuanVideoTransformer3DModel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dcm_lightning.conditioning import TextCondition
from dcm_lightning.experts import DualExpertNetwork
from dcm_lightning.sampling import denoiser, sample
from dcm_lightning.teachers.hunyuan_video import HunyuanVideoNetwork, HunyuanVideoTeacher
from tests.tiny_diffusers import LATENT, tiny_transformer


@pytest.fixture
def hunyuan():
    transformer = tiny_transformer("hunyuan_video")
    return HunyuanVideoTeacher(HunyuanVideoNetwork(transformer), LATENT, shift=7.0, num_steps=50, embedded_guidance=6.0)


def _text(batch: int = 2) -> TextCondition:
    generator = torch.Generator().manual_seed(1)
    mask = torch.ones(batch, 7, dtype=torch.bool)
    mask[1:, 5:] = False  # padding on the right, as the pipeline's tokenizer pads
    return TextCondition(
        torch.randn(batch, 7, 32, generator=generator), mask, torch.randn(batch, 16, generator=generator)
    )


def test_the_50_step_sample_equals_diffusers_flow_match_euler_loop(hunyuan):
    """HunyuanVideoPipeline's loop: FlowMatchEulerDiscreteScheduler(shift 7) over linspace(1, 0, 51)[:-1],
    timestep t, embedded guidance 6 · 1000, latents = scheduler.step(v, t, latents)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    noise = torch.randn(2, *LATENT, generator=torch.Generator().manual_seed(2))
    text = _text()
    ours = sample(denoiser(hunyuan, text), hunyuan.parameterization, noise, hunyuan.sigmas())

    scheduler = FlowMatchEulerDiscreteScheduler(shift=7.0)
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 0.0, 51)[:-1])
    latents, guidance = noise.clone(), torch.tensor([6.0, 6.0]) * 1000.0
    with torch.no_grad():
        for t in scheduler.timesteps:
            v = hunyuan.network.transformer(
                hidden_states=latents,
                timestep=t.expand(2),
                encoder_hidden_states=text.embeds,
                encoder_attention_mask=text.mask.float(),
                pooled_projections=text.pooled,
                guidance=guidance,
                return_dict=False,
            )[0]
            latents = scheduler.step(v, t, latents, return_dict=False)[0]
    torch.testing.assert_close(ours, latents, rtol=1e-4, atol=1e-4)


def test_features_come_from_every_requested_block_and_the_student_keeps_the_embedded_guidance(hunyuan):
    x = torch.randn(2, *LATENT, generator=torch.Generator().manual_seed(3))
    prediction = hunyuan.predict(x, torch.tensor([0.9, 0.3]), _text(), feature_blocks=[0, 3])
    assert [f.shape for f in prediction.features] == [(2, 5 * 4 * 4, 32)] * 2
    student = hunyuan.student_copy()
    assert student.embedded_guidance == 6.0 and student.network is not hunyuan.network
    torch.testing.assert_close(student.predict(x, torch.tensor([0.9, 0.3]), _text()).x0, prediction.x0)


def test_the_detail_expert_wraps_hunyuan_video(hunyuan):
    experts = DualExpertNetwork(
        hunyuan.student_copy().network,
        HunyuanVideoTeacher.psi_modules,
        lora_rank=4,
        lora_targets=HunyuanVideoTeacher.lora_targets,
    )
    names = experts.trainable_names()
    assert any("transformer_blocks.0.attn.to_q.lora_A" in n for n in names)
    assert any("single_transformer_blocks.1.attn.to_k.lora_A" in n for n in names)
    assert any(n.startswith("psi.transformer/time_text_embed.") for n in names)
    text = _text()
    x = torch.randn(2, *LATENT, generator=torch.Generator().manual_seed(4))
    args = (x, torch.tensor([950.0, 200.0]), text.embeds, text.mask, text.pooled, torch.full((2,), 6000.0))
    with torch.no_grad():
        torch.testing.assert_close(experts(*args, expert="detail"), experts(*args, expert="semantic"))
