"""The discriminator heads: the official head (two 1×1 conv + GroupNorm + LeakyReLU layers with a skip,
then one logit) over a token axis of any length, GroupNorm per latent frame."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dcm_lightning.networks.discriminator import DiscriminatorHead, FeatureDiscriminator, every_kth_block


@pytest.mark.parametrize("frames, tokens", [(1, 7), (4, 64), (3, 49 * 80 // 4)])
def test_heads_are_shape_agnostic(frames, tokens):
    discriminator = FeatureDiscriminator(feature_dim=32, num_layers=2, hidden_dim=64, groups=8)
    logits = discriminator([torch.randn(2, frames * tokens, 32), torch.randn(2, frames * tokens, 32)], frames)
    assert [tuple(x.shape) for x in logits] == [(2, frames * tokens)] * 2


def test_every_head_gets_gradient():
    discriminator = FeatureDiscriminator(feature_dim=16, num_layers=3, hidden_dim=32, groups=4)
    sum(x.sum() for x in discriminator([torch.randn(1, 10, 16) for _ in range(3)], 2)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in discriminator.parameters())


def test_a_head_is_the_official_conv_head_on_each_frames_map():
    """Official (Vchitect/DCM discriminator_wan.py): per frame a (c, h, w) map; conv1 = 1×1 conv → GN(32)
    → LeakyReLU; conv2 likewise, plus conv1's output; conv_out 1×1 → 1."""
    torch.manual_seed(0)
    head = DiscriminatorHead(feature_dim=8, hidden_dim=64, groups=32)
    frames, h, w = 3, 2, 5
    tokens = torch.randn(2, frames * h * w, 8)

    def conv(linear: nn.Linear) -> nn.Conv2d:
        layer = nn.Conv2d(linear.in_features, linear.out_features, 1)
        layer.weight.data = linear.weight.data[:, :, None, None]
        layer.bias.data = linear.bias.data
        return layer

    def block(layer) -> nn.Sequential:
        return nn.Sequential(conv(layer.linear), layer.norm, nn.LeakyReLU())  # default slope 0.01

    maps = tokens.view(2 * frames, h * w, 8).permute(0, 2, 1).reshape(2 * frames, 8, h, w)
    first = block(head.conv1)(maps)
    official = conv(head.conv_out)(block(head.conv2)(first) + first)  # (b t) 1 h w
    torch.testing.assert_close(head(tokens, frames), official.reshape(2, frames * h * w), rtol=1e-5, atol=1e-6)
    # GroupNorm per frame: scaling one frame's features leaves the other frames' logits unchanged
    scaled = tokens.clone()
    scaled[:, : h * w] *= 10
    torch.testing.assert_close(head(scaled, frames)[:, h * w :], head(tokens, frames)[:, h * w :])
    whole_clip = DiscriminatorHead(feature_dim=8, hidden_dim=64, groups=32, norm="video")
    whole_clip.load_state_dict(head.state_dict())
    assert not torch.allclose(whole_clip(scaled, frames)[:, h * w :], whole_clip(tokens, frames)[:, h * w :])


def test_every_kth_block_counts_from_the_first():
    assert every_kth_block(0, 6, 2) == [0, 2, 4]
    assert every_kth_block(20, 60, 2) == [20 + i for i in range(0, 40, 2)]
    with pytest.raises(ValueError):
        every_kth_block(0, 6, 0)


def test_checkpointed_heads_give_the_same_logits_and_gradients():
    """``checkpoint_heads`` (set with activation checkpointing) recomputes each head's maps in backward."""
    torch.manual_seed(0)
    discriminator = FeatureDiscriminator(feature_dim=16, num_layers=2, hidden_dim=32, groups=4)
    features = [torch.randn(2, 3 * 5, 16, requires_grad=True) for _ in range(2)]
    results = []
    for checkpointed in (False, True):
        discriminator.checkpoint_heads = checkpointed
        discriminator.zero_grad()
        for f in features:
            f.grad = None
        logits = discriminator(features, frames=3)
        torch.stack([torch.relu(1 - x).mean() for x in logits]).sum().backward()
        grads = [p.grad.clone() for p in discriminator.parameters()] + [f.grad.clone() for f in features]
        results.append(([x.detach() for x in logits], grads))
    for a, b in zip(results[0][0] + results[0][1], results[1][0] + results[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
