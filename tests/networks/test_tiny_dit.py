import pytest
import torch

from dcm_lightning.errors import UserError
from dcm_lightning.networks.tiny_dit import TINY_DIT_SIZES, TinyDiTBlock, TinyVideoDiT, tiny_dit_config


def _inputs(batch=2, frames=8, size=32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, frames, size, size, generator=g)
    return (
        x,
        torch.tensor([500.0, 20.0][:batch]),
        torch.randn(batch, 8, 64, generator=g),
        torch.ones(batch, 8, dtype=torch.bool),
    )


def test_output_has_the_input_layout_and_features_come_from_the_requested_blocks():
    network = TinyVideoDiT(tiny_dit_config("test"))
    x, t, text, mask = _inputs()
    v, features = network(x, t, text, mask, feature_blocks=(0, 1))
    assert v.shape == x.shape
    assert [f.shape for f in features] == [(2, 4 * 8 * 8, 32)] * 2


def test_adaln_zero_init_makes_the_untrained_network_output_zero():
    network = TinyVideoDiT(tiny_dit_config("test"))
    assert torch.count_nonzero(network(*_inputs())) == 0


def test_other_resolutions_and_lengths_work_with_the_same_weights():
    network = TinyVideoDiT(tiny_dit_config("test"))
    x, t, text, mask = _inputs(frames=16, size=48)
    assert network(x, t, text, mask).shape == x.shape


def test_a_video_the_patches_do_not_tile_is_refused_before_compute():
    network = TinyVideoDiT(tiny_dit_config("test"))
    x, t, text, mask = _inputs()
    with pytest.raises(UserError, match="does not fit this TinyVideoDiT"):
        network(x[:, :, :7], t, text, mask)


def test_size_registry_has_a_cpu_size_and_refuses_unknown_names():
    assert "cpu" in TINY_DIT_SIZES
    cpu = TinyVideoDiT(tiny_dit_config("cpu"))
    assert 1e6 < sum(p.numel() for p in cpu.parameters()) < 3e6
    assert sum(isinstance(m, TinyDiTBlock) for m in cpu.modules()) == TINY_DIT_SIZES["cpu"]["depth"]
    with pytest.raises(UserError, match="unknown TinyVideoDiT size"):
        tiny_dit_config("huge")


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    network = TinyVideoDiT(tiny_dit_config("test"))
    for p in network.parameters():
        torch.nn.init.normal_(p, std=0.05)
    inputs = _inputs()
    network(*inputs).square().sum().backward()
    plain = [p.grad.clone() for p in network.parameters()]
    network.zero_grad()
    network.gradient_checkpointing = True
    network(*inputs).square().sum().backward()
    for expected, got in zip(plain, (p.grad for p in network.parameters()), strict=True):
        torch.testing.assert_close(got, expected)


def test_rotary_attention_scores_depend_only_on_relative_position():
    from dcm_lightning.networks.tiny_dit import apply_rope, video_rope

    rope = video_rope(4, 8, 8, 32, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(32, generator=g), torch.randn(32, generator=g)
    q_all = apply_rope(q.expand(1, 1, 256, 32), rope)[0, 0]
    k_all = apply_rope(k.expand(1, 1, 256, 32), rope)[0, 0]

    def index(t, h, w):
        return (t * 8 + h) * 8 + w

    # Same offset (1 frame, 2 rows, −1 column) from two different places gives the same score.
    first = q_all[index(0, 1, 3)] @ k_all[index(1, 3, 2)]
    second = q_all[index(2, 4, 6)] @ k_all[index(3, 6, 5)]
    torch.testing.assert_close(first, second)
    assert not torch.allclose(first, q_all[index(0, 1, 3)] @ k_all[index(0, 1, 3)])


def test_masked_prompt_tokens_have_no_influence():
    torch.manual_seed(0)
    network = TinyVideoDiT(tiny_dit_config("test"))
    for p in network.parameters():
        torch.nn.init.normal_(p, std=0.05)
    x, t, text, mask = _inputs()
    mask[:, 4:] = False
    changed = text.clone()
    changed[:, 4:] = torch.randn_like(changed[:, 4:])
    torch.testing.assert_close(network(x, t, changed, mask), network(x, t, text, mask))
    assert not torch.allclose(network(x, t, text, torch.ones_like(mask)), network(x, t, text, mask))
