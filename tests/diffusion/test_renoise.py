"""Variance-correct re-noising to σ_adv (docs/design.md §2): the marginal at σ_adv is the forward process's."""

from __future__ import annotations

import pytest
import torch

from dcm_lightning.diffusion import FlowMatching, renoise

FM = FlowMatching()


def test_renoising_a_clean_sample_is_the_forward_process():
    x0, eps = torch.randn(4, 3), torch.randn(4, 3)
    sigma_adv = torch.tensor(0.4)
    renoised = renoise(x0, FM.coefficients(torch.tensor(0.0)), FM.coefficients(sigma_adv), eps)
    torch.testing.assert_close(renoised, (1 - sigma_adv) * x0 + sigma_adv * eps)


@pytest.mark.parametrize(("sigma_e", "sigma_adv"), [(0.2, 0.5), (0.5, 0.9), (0.3, 0.3)])
def test_a_noisy_sample_renoised_has_the_forward_marginal_at_sigma_adv(sigma_e, sigma_adv):
    generator = torch.Generator().manual_seed(0)
    n = 400_000
    x0 = torch.where(torch.rand(n, generator=generator) < 0.5, -0.8, 0.6)  # a two-point "data" set
    x_e = (1 - sigma_e) * x0 + sigma_e * torch.randn(n, generator=generator)
    eps = torch.randn(n, generator=generator)
    renoised = renoise(x_e, FM.coefficients(torch.tensor(sigma_e)), FM.coefficients(torch.tensor(sigma_adv)), eps)
    direct = (1 - sigma_adv) * x0 + sigma_adv * torch.randn(n, generator=generator)
    assert abs(float(renoised.mean() - direct.mean())) < 0.01
    assert abs(float(renoised.std() - direct.std())) < 0.01
    # The data part is carried exactly: the residual around (1 − σ_adv)·x0 is noise of std σ_adv.
    assert abs(float((renoised - (1 - sigma_adv) * x0).std()) - sigma_adv) < 0.01


def test_renoising_downwards_is_refused():
    x = torch.zeros(2)
    with pytest.raises(ValueError, match="lower noise level"):
        renoise(x, FM.coefficients(torch.tensor(0.6)), FM.coefficients(torch.tensor(0.3)), x)
