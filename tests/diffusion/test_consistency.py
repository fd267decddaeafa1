import pytest
import torch

from dcm_lightning.diffusion import FlowMatching, grid_sigma
from dcm_lightning.diffusion.consistency import consistency_target, jump
from dcm_lightning.diffusion.phases import CLEAN_INDEX, Segment, detail_segment, semantic_segment, whole_trajectory
from dcm_lightning.errors import UserError
from dcm_lightning.losses import pseudo_huber, temporal_coherence

FM = FlowMatching()
DATA = torch.randn(2, 3, 4, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def ideal_denoiser(x, sigma):
    """The exact denoiser of a one-point data distribution: its ODE is solved exactly by any jump."""
    level = sigma.reshape(-1, 1, 1, 1, 1)
    eps = (x - (1 - level) * DATA) / level
    return DATA.expand_as(x), eps


def sigma_at(index: int) -> torch.Tensor:
    value = 0.0 if index == CLEAN_INDEX else float(grid_sigma(index, 50, 17.0))
    return torch.full((2,), value, dtype=torch.float64)


def test_segments_follow_kappa():
    semantic, detail = semantic_segment(37, 50), detail_segment(37, 50)
    assert list(semantic.sample_indices()) == list(range(38, 50)) and semantic.phase_end(49) == 37
    assert list(detail.sample_indices()) == list(range(0, 38)) and detail.phase_end(0) == CLEAN_INDEX
    with pytest.raises(UserError, match="outside the grid"):
        semantic_segment(49, 50)


def test_pcm_phases_split_the_trajectory_into_nearly_equal_runs():
    pcm = whole_trajectory(50, num_phases=4)
    assert pcm.phase_ends() == [-1, 11, 24, 36]
    assert [pcm.phase_end(n) for n in (0, 11, 12, 24, 25, 36, 37, 49)] == [-1, -1, 11, 11, 24, 24, 36, 36]
    assert whole_trajectory(50).phase_ends() == [-1]
    with pytest.raises(UserError, match="do not fit"):
        Segment(end=37, last=40, num_phases=4)


@pytest.mark.parametrize(("n", "end"), [(45, 37), (38, 37), (20, CLEAN_INDEX), (0, CLEAN_INDEX)])
def test_an_exact_ode_solver_has_zero_consistency_loss(n, end):
    eps = torch.randn_like(DATA)
    x_n = (1 - sigma_at(n)[0]) * DATA + sigma_at(n)[0] * eps
    student_end = jump(ideal_denoiser, FM, x_n, sigma_at(n), sigma_at(end))
    x_prev = jump(ideal_denoiser, FM, x_n, sigma_at(n), sigma_at(n - 1))  # the teacher's step
    target = consistency_target(ideal_denoiser, FM, x_prev, sigma_at(n - 1), sigma_at(end))
    torch.testing.assert_close(student_end, target)
    assert float(pseudo_huber(student_end, target)) == pytest.approx(0.0, abs=1e-9)


def test_the_target_is_the_teacher_step_itself_when_it_lands_on_the_phase_end():
    x_prev = torch.randn_like(DATA)
    zero_denoiser = lambda x, s: (torch.zeros_like(x), torch.zeros_like(x))  # noqa: E731
    target = consistency_target(zero_denoiser, FM, x_prev, sigma_at(37), sigma_at(37))
    torch.testing.assert_close(target, x_prev)


def test_pseudo_huber_is_quadratic_near_zero_and_linear_far_away():
    small, large = torch.tensor([1e-4]), torch.tensor([10.0])
    assert float(pseudo_huber(small, torch.zeros(1), c=1e-3)) == pytest.approx(1e-4**2 / (2e-3), rel=1e-2)
    assert float(pseudo_huber(large, torch.zeros(1), c=1e-3)) == pytest.approx(10.0, rel=1e-3)


def test_temporal_coherence_ignores_a_constant_offset_but_not_a_motion_error():
    target = torch.randn(1, 3, 6, 4, 4)
    assert float(temporal_coherence(target + 0.7, target, lag=3)) == pytest.approx(0.0, abs=1e-12)
    moved = target.clone()
    moved[:, :, 4:] += 1.0
    assert float(temporal_coherence(moved, target, lag=3)) > 0.1
    with pytest.raises(ValueError):
        temporal_coherence(target, target, lag=6)


def test_two_plus_two_steps_reproduce_the_official_hunyuan_schedule():
    from dcm_lightning.diffusion.phases import uniform_step_indices

    indices = uniform_step_indices(semantic_segment(37, 50), 2) + uniform_step_indices(detail_segment(37, 50), 2)
    assert indices == [49, 43, 37, 18]
    sigmas = [float(grid_sigma(i, 50, 17.0)) for i in indices]
    assert sigmas == pytest.approx([1.0, 0.99204, 0.98176, 0.9124], abs=5e-5)


def test_a_phased_student_starts_each_step_where_the_last_phase_ended():
    from dcm_lightning.diffusion.phases import phase_start_indices

    pcm = whole_trajectory(50, num_phases=4)
    starts = phase_start_indices(pcm)
    assert starts == [49, 36, 24, 11]
    assert [pcm.phase_end(s) for s in starts] == [36, 24, 11, CLEAN_INDEX]


def test_the_vcm_segment_is_one_trajectory_with_dcms_two_phase_ends():
    from dcm_lightning.diffusion.phases import split_trajectory
    from dcm_lightning.errors import UserError

    segment = split_trajectory(37, 50)
    assert list(segment.sample_indices()) == list(range(0, 50))
    assert segment.phase_ends() == [-1, 37]
    assert segment.phase_end(49) == segment.phase_end(38) == 37  # SemE's phase
    assert segment.phase_end(37) == segment.phase_end(0) == -1  # DetE's phase
    with pytest.raises(UserError):
        split_trajectory(49, 50)
