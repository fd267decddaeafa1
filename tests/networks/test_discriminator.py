"""The discriminator heads: one logit per token for any token count, one head per feature layer."""

from __future__ import annotations

import pytest
import torch

from dcm_lightning.networks.discriminator import FeatureDiscriminator, feature_layers


@pytest.mark.parametrize("tokens", [7, 64, 3 * 49 * 80 // 16])
def test_heads_are_shape_agnostic(tokens):
    discriminator = FeatureDiscriminator(feature_dim=32, num_layers=2, hidden_dim=64, groups=8)
    logits = discriminator([torch.randn(2, tokens, 32), torch.randn(2, tokens, 32)])
    assert [tuple(x.shape) for x in logits] == [(2, tokens), (2, tokens)]


def test_every_head_gets_gradient():
    discriminator = FeatureDiscriminator(feature_dim=16, num_layers=3, hidden_dim=32, groups=4)
    sum(x.sum() for x in discriminator([torch.randn(1, 5, 16) for _ in range(3)])).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in discriminator.parameters())


def test_feature_layers_take_every_kth_block():
    assert feature_layers(6, 2) == [1, 3, 5]
    assert feature_layers(40, 2)[:3] == [1, 3, 5] and len(feature_layers(40, 2)) == 20
    with pytest.raises(ValueError):
        feature_layers(6, 0)
