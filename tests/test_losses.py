"""The loss functions against their formulas, at points where the answer is known."""

from __future__ import annotations

import pytest
import torch

from dcm_lightning.losses import (
    feature_matching,
    hinge_discriminator_loss,
    hinge_generator_loss,
    linear_generator_loss,
    non_saturating_generator_loss,
)


def test_hinge_discriminator_loss_is_zero_only_beyond_the_margins():
    assert float(hinge_discriminator_loss(torch.tensor([1.5, 2.0]), torch.tensor([-1.0, -3.0]))) == 0.0
    # relu(1 − 0.5) = 0.5 for real; relu(1 + 0) = 1 for fake
    assert float(hinge_discriminator_loss(torch.tensor([0.5]), torch.tensor([0.0]))) == pytest.approx(1.5)


def test_generator_terms():
    logits = torch.tensor([0.0, 2.0])
    assert float(hinge_generator_loss(logits)) == pytest.approx(0.5)  # official: mean relu(1 − D(fake))
    assert float(linear_generator_loss(logits)) == pytest.approx(-1.0)
    expected = (torch.log1p(torch.exp(-logits))).mean()
    assert float(non_saturating_generator_loss(logits)) == pytest.approx(float(expected))


def test_feature_matching_averages_the_per_layer_mean_squared_error():
    fake = [torch.zeros(2, 3), torch.ones(1, 4)]
    real = [torch.ones(2, 3), torch.ones(1, 4)]
    assert float(feature_matching(fake, real)) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        feature_matching(fake, real[:1])
