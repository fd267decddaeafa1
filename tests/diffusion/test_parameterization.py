import pytest
import torch

from dcm_lightning.diffusion import FlowMatching, VPrediction, classifier_free_guidance, ddim_jump
from dcm_lightning.diffusion.parameterization import scaled_linear_alphas_cumprod


def _sample(shape=(2, 3, 4, 8, 8)):
    g = torch.Generator().manual_seed(0)
    return torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("sigma", [0.0, 0.3, 0.97, 1.0])
def test_flow_matching_recovers_x0_and_eps_from_v(sigma):
    x0, eps = _sample()
    fm = FlowMatching()
    level = torch.full((2, 1, 1, 1, 1), sigma, dtype=torch.float64)
    a, b = fm.coefficients(level)
    x = a * x0 + b * eps
    x0_hat, eps_hat = fm.to_x0_eps(x, level, fm.training_target(x0, eps, level))
    torch.testing.assert_close(x0_hat, x0)
    if sigma > 0:  # at σ = 0 the sample carries no information about ε
        torch.testing.assert_close(eps_hat, eps)


def test_flow_matching_jump_is_the_euler_step():
    x0, eps = _sample()
    fm = FlowMatching()
    sigma, target = 0.8, 0.55
    x = (1 - sigma) * x0 + sigma * eps
    v = torch.randn_like(x)  # any network output
    x0_hat, eps_hat = fm.to_x0_eps(x, torch.tensor(sigma, dtype=torch.float64), v)
    a, b = fm.coefficients(torch.tensor(target, dtype=torch.float64))
    torch.testing.assert_close(ddim_jump(x0_hat, eps_hat, a, b), x + (target - sigma) * v)


@pytest.mark.parametrize("timestep", [0, 250, 999])
def test_v_prediction_recovers_x0_and_eps(timestep):
    x0, eps = _sample()
    vp = VPrediction(scaled_linear_alphas_cumprod())
    level = torch.full((2, 1, 1, 1, 1), timestep / 999, dtype=torch.float64)
    alpha, s = vp.coefficients(level)
    assert torch.allclose(alpha.square() + s.square(), torch.ones_like(alpha))
    x = alpha * x0 + s * eps
    x0_hat, eps_hat = vp.to_x0_eps(x, level, vp.training_target(x0, eps, level))
    torch.testing.assert_close(x0_hat, x0)
    torch.testing.assert_close(eps_hat, eps)
    assert int(vp.model_timestep(level).flatten()[0]) == timestep


def test_v_prediction_ddim_jump_keeps_the_predicted_noise():
    # DDIM (η = 0) re-noises x̂0 with the same ε̂: x_s = α_s x̂0 + s_s ε̂.
    x0, eps = _sample()
    vp = VPrediction(scaled_linear_alphas_cumprod())
    alpha_s, s_s = vp.coefficients(torch.tensor(0.4, dtype=torch.float64))
    torch.testing.assert_close(ddim_jump(x0, eps, alpha_s, s_s), alpha_s * x0 + s_s * eps)


def test_guidance_scale_one_is_the_conditional_and_zero_the_unconditional():
    cond, uncond = _sample()
    torch.testing.assert_close(classifier_free_guidance(cond, uncond, 1.0), cond)
    torch.testing.assert_close(classifier_free_guidance(cond, uncond, 0.0), uncond)
