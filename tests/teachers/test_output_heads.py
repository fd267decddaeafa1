"""The detail expert's feature matching compares block features taken through the teacher's output head,
as the official code does ("final_layer" features: norm, projection, unpatchify). A block's projected
features must equal what the network outputs when that block is its last one — computed here
independently, by running a copy of the network truncated after the block — for the tiny network and
the three diffusers families; and each real adapter offers the discriminator the official blocks."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from dcm_lightning.losses import feature_matching
from dcm_lightning.networks.discriminator import every_kth_block
from dcm_lightning.teachers.cogvideox import CogVideoXNetwork
from dcm_lightning.teachers.hunyuan_video import HunyuanVideoNetwork
from dcm_lightning.teachers.wan import WAN21_T2V_1_3B, WanNetwork
from tests.conftest import make_random_teacher
from tests.tiny_diffusers import LATENT, tiny_transformer

WRAPPERS = {"hunyuan_video": HunyuanVideoNetwork, "wan": WanNetwork, "cogvideox": CogVideoXNetwork}


def _truncated(network: nn.Module, last: int) -> nn.Module:
    """A copy of ``network`` whose block ``last`` is its final block (the output head follows it)."""
    truncated = copy.deepcopy(network)
    inner = getattr(truncated, "transformer", truncated)
    if hasattr(inner, "single_transformer_blocks"):  # HunyuanVideo: dual-stream, then single-stream blocks
        dual = len(inner.transformer_blocks)
        inner.transformer_blocks = inner.transformer_blocks[: last + 1]
        inner.single_transformer_blocks = inner.single_transformer_blocks[: max(0, last + 1 - dual)]
    elif hasattr(inner, "transformer_blocks"):  # CogVideoX
        inner.transformer_blocks = inner.transformer_blocks[: last + 1]
    else:  # Wan, the tiny DiT
        inner.blocks = inner.blocks[: last + 1]
    return truncated


def _call(family: str, batch: int = 2) -> tuple:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(batch, *LATENT, generator=generator)
    text = torch.randn(batch, 7, 32, generator=generator)
    mask = torch.ones(batch, 7, dtype=torch.bool)
    timestep = torch.tensor([900.0, 250.0])
    if family == "hunyuan_video":
        return x, timestep, text, mask, torch.randn(batch, 16, generator=generator), torch.full((batch,), 6000.0)
    return x, timestep, text, mask


@pytest.mark.parametrize("family", list(WRAPPERS))
def test_projected_features_are_the_output_of_the_network_cut_after_that_block(family):
    network = WRAPPERS[family](tiny_transformer(family))
    args = _call(family)
    blocks = list(range(len(network.blocks)))
    with torch.no_grad():
        v, features, heads = network(*args, feature_blocks=blocks, feature_heads=True)
        assert [tuple(f.shape) for f in features] == [(2, features[0].shape[1], network.feature_dim)] * len(blocks)
        torch.testing.assert_close(heads[-1], v)  # the last block's projection is the output itself
        for block in blocks[:-1]:
            expected = _truncated(network, block)(*args)
            torch.testing.assert_close(heads[block], expected, rtol=1e-5, atol=1e-6)
            assert not torch.allclose(heads[block], v)
        assert network(*args, feature_blocks=blocks)[1][0].shape == features[0].shape  # without heads: 2 items


def test_the_tiny_networks_projection_and_the_feature_matching_value_by_hand():
    """On the tiny teacher: each block's projection is the truncated network's output (its output head
    includes the refining convolution over the noisy input), and feature matching on them equals the
    mean over blocks of the mean squared difference computed from those truncated networks."""
    teacher = make_random_teacher()
    teacher.network.blocks.append(copy.deepcopy(teacher.network.blocks[0]))  # depth 3: blocks 0 and 2 read
    condition = teacher.encode_prompts(["a plain red circle moving up"] * 2)
    generator = torch.Generator().manual_seed(0)
    fake, real = (torch.randn(2, *teacher.latent_shape(), generator=generator) for _ in range(2))
    sigma = torch.tensor([0.1, 0.6])
    readable = teacher.network.discriminator_blocks
    blocks = every_kth_block(readable.start, readable.stop, 2)
    assert blocks == [0, 2]
    with torch.no_grad():
        ours = [
            teacher.predict(x, sigma, condition, guidance_scale=1.0, feature_blocks=blocks, feature_heads=True)
            for x in (fake, real)
        ]
        timestep = teacher.parameterization.model_timestep(sigma)
        by_hand = []
        for block in blocks:
            cut = _truncated(teacher.network, block)
            v_fake, v_real = (cut(x, timestep, condition.embeds, condition.mask) for x in (fake, real))
            by_hand.append((v_fake - v_real).square().mean())
    expected = torch.stack(by_hand).mean()
    torch.testing.assert_close(feature_matching(ours[0].head_features, ours[1].head_features), expected)
    raw = feature_matching(ours[0].features, ours[1].features)
    assert not torch.isclose(raw, expected)  # the wave-1 "hidden" space is another quantity


def test_the_detail_expert_matches_output_head_features_by_default(chained):
    from dcm_lightning.modules import DetEModule
    from dcm_lightning.modules.dete_settings import DetailExpertSpec, DiscriminatorSpec

    _, semantic = chained
    module = DetEModule(
        semantic_checkpoint=str(semantic),
        detail=DetailExpertSpec(lora_rank=4),
        discriminator=DiscriminatorSpec(feature_every=1),
    )
    assert module.adversarial.feature_matching_space == "output_head" and module.layers == [0, 1]
    condition = module.teacher.encode_prompts(["a plain red circle moving up"] * 2)
    x = torch.randn(2, *module.teacher.latent_shape(), generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.3, 0.8])
    with torch.no_grad():
        hidden, matched = module.teacher_features(x, sigma, SimpleNamespace(condition=condition))
        timestep = module.teacher.parameterization.model_timestep(sigma)
        for block, projected in zip(module.layers, matched, strict=True):
            cut = _truncated(module.teacher.network, block)
            torch.testing.assert_close(projected, cut(x, timestep, condition.embeds, condition.mask))
    assert [h.shape[-1] for h in hidden] == [module.teacher.network.feature_dim] * 2


def test_each_real_adapter_offers_the_discriminator_the_official_blocks():
    """Official (Vchitect/DCM): HunyuanVideo reads single-stream blocks 0, 2, …, 38 (of 40, after the 20
    dual-stream ones), Wan2.1 blocks 0, 2, …, 28 (of 30); CogVideoX (no official DetE) every 2nd from 0."""
    import diffusers

    with torch.device("meta"):
        hunyuan = HunyuanVideoNetwork(diffusers.HunyuanVideoTransformer3DModel())  # the released 13 B config
        wan = WanNetwork(diffusers.WanTransformer3DModel(**WAN21_T2V_1_3B))
        cogvideox = CogVideoXNetwork(diffusers.CogVideoXTransformer3DModel())  # CogVideoX-2b: 30 blocks

    def read(network) -> list[int]:
        blocks = network.discriminator_blocks
        return every_kth_block(blocks.start, blocks.stop, 2)

    assert read(hunyuan) == [20 + i for i in range(0, 39, 2)]  # single-stream 0, 2, …, 38
    assert read(wan) == list(range(0, 29, 2))
    assert read(cogvideox) == list(range(0, 29, 2))
    assert isinstance(
        hunyuan.blocks[read(hunyuan)[0]],
        diffusers.models.transformers.transformer_hunyuan_video.HunyuanVideoSingleTransformerBlock,
    )


def test_projected_features_under_guidance_are_the_conditional_halfs():
    teacher = make_random_teacher()  # guidance 4: conditional and unconditional halves in one batch
    condition = teacher.encode_prompts(["a plain red circle moving up"] * 2)
    x = torch.randn(2, *teacher.latent_shape(), generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.2, 0.7])
    with torch.no_grad():
        guided = teacher.predict(x, sigma, condition, feature_blocks=[0], feature_heads=True)
        plain = teacher.predict(x, sigma, condition, guidance_scale=1.0, feature_blocks=[0], feature_heads=True)
    torch.testing.assert_close(guided.head_features[0], plain.head_features[0])
    torch.testing.assert_close(guided.features[0], plain.features[0])
