import pytest
import torch

from dcm_lightning.diffusion import grid_sigma, shifted_sigma, sigma_at, teacher_sigmas, validate_boundary_index
from dcm_lightning.errors import UserError
from dcm_lightning.teachers.cogvideox import trailing_sigmas

# docs/design.md §2: the official grid at shift 17, index i ↦ σ((i + 1) / 50).
PINNED = {0: 0.2576, 18: 0.9124, 34: 0.97541, 37: 0.98176, 43: 0.99204, 49: 1.0}


@pytest.mark.parametrize(("index", "sigma"), PINNED.items())
def test_grid_matches_the_papers_indexing(index, sigma):
    assert float(grid_sigma(index, 50, 17.0)) == pytest.approx(sigma, abs=5e-5)


def test_shift_one_is_the_identity_and_shift_bends_towards_noise():
    t = torch.linspace(0, 1, 11)
    torch.testing.assert_close(shifted_sigma(t, 1.0), t.double())
    assert bool((shifted_sigma(t[1:-1], 3.0) > t[1:-1]).all())


def test_teacher_sigmas_run_from_one_to_zero_in_n_steps():
    sigmas = teacher_sigmas(50, 17.0)
    assert sigmas.shape == (51,)
    assert float(sigmas[0]) == 1.0 and float(sigmas[-1]) == 0.0
    assert float(sigmas[-2]) == pytest.approx(PINNED[0], abs=5e-5)
    assert bool((sigmas[1:] < sigmas[:-1]).all())


def test_boundary_sigma_follows_kappa():
    sigmas = teacher_sigmas(50, 17.0)
    assert float(sigma_at(37, sigmas)) == pytest.approx(0.98176, abs=5e-5)
    assert float(sigma_at(34, sigmas)) == pytest.approx(0.97541, abs=5e-5)


@pytest.mark.parametrize("kappa", [-1, 0, 49, 50, 100])
def test_kappa_outside_the_grid_is_refused_with_one_sentence(kappa):
    with pytest.raises(UserError, match="outside the grid"):
        validate_boundary_index(kappa, 50)


def test_sigma_at_indexes_any_teachers_level_list_from_the_clean_end():
    """Flow grid: index i is σ((i + 1)/N) and −1 is 0; CogVideoX's trailing DDIM grid: index i is
    the (i + 1)-th timestep from the clean end, so κ and phases mean the same on both."""
    flow = teacher_sigmas(50, 17.0)
    indices = torch.tensor([49, 37, 0, -1])
    torch.testing.assert_close(sigma_at(indices, flow), torch.cat([grid_sigma(indices[:3], 50, 17.0), flow[-1:]]))
    trailing = trailing_sigmas(50)
    assert sigma_at(torch.tensor([49, 0, -1]), trailing).mul(999).round().tolist() == [999.0, 19.0, 0.0]
    with pytest.raises(UserError, match="grid indices"):
        sigma_at(torch.tensor([50]), trailing)
