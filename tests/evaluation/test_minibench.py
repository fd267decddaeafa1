"""MiniBench: clean renders sit at each dimension's ceiling, each defect lowers its own dimension,
and the aggregation is VBench's (dynamic degree weighs 0.5, Total = (4·Quality + Semantic)/5)."""

from __future__ import annotations

import math

import pytest
import torch

from dcm_lightning.evaluation.agreement import teacher_agreement
from dcm_lightning.evaluation.latency import count_forwards, nfe_bound_fraction
from dcm_lightning.evaluation.minibench import QUALITY_WEIGHTS, SEMANTIC_DIMENSIONS, aggregate, score_video
from dcm_lightning.moving_shapes import MovingShapesSpec, parse_prompt
from dcm_lightning.moving_shapes.render import Motion, render_clip, render_sample

SPEC = MovingShapesSpec()
PROMPT = "a striped red square moving right"


@pytest.fixture
def clean():
    return render_sample(parse_prompt(PROMPT), seed=3, spec=SPEC)[0]


def test_a_clean_render_scores_at_the_ceiling_of_every_dimension(clean):
    scores = score_video(clean, parse_prompt(PROMPT), SPEC)
    assert set(scores) == {*QUALITY_WEIGHTS, *SEMANTIC_DIMENSIONS, "all_semantic"}
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert scores["background_consistency"] == 1.0 and scores["dynamic_degree"] == 1.0
    assert scores["imaging_quality"] == 1.0
    assert scores["subject_consistency"] > 0.85 and scores["temporal_flickering"] > 0.97
    assert scores["motion_smoothness"] > 0.8
    assert all(scores[d] == 1.0 for d in SEMANTIC_DIMENSIONS) and scores["all_semantic"] == 1.0


def test_each_defect_lowers_its_own_dimension(clean):
    attributes = parse_prompt(PROMPT)
    base = score_video(clean, attributes, SPEC)
    generator = torch.Generator().manual_seed(0)
    noisy = clean + 0.15 * torch.randn(clean.shape, generator=generator)
    assert score_video(noisy, attributes, SPEC)["imaging_quality"] < base["imaging_quality"] - 0.2
    assert score_video(noisy, attributes, SPEC)["background_consistency"] < base["background_consistency"] - 0.05
    flicker = clean.clone()
    flicker[:, 1::2] *= 0.7  # every other frame dimmer
    assert score_video(flicker, attributes, SPEC)["temporal_flickering"] < base["temporal_flickering"] - 0.1
    # A track that zigzags: frames taken from two clips of the same square offset by 3 px vertically.
    shifted = render_clip(attributes, Motion(8.0, 11.0, 1.0, 15.0), SPEC)
    straight = render_clip(attributes, Motion(8.0, 14.0, 1.0, 15.0), SPEC)
    zigzag = torch.where(torch.arange(SPEC.frames).view(1, -1, 1, 1) % 2 == 0, straight, shifted)
    assert (
        score_video(zigzag, attributes, SPEC)["motion_smoothness"]
        < score_video(straight, attributes, SPEC)["motion_smoothness"] - 0.3
    )
    still = clean[:, :1].expand_as(clean).clone()
    assert score_video(still, attributes, SPEC)["dynamic_degree"] == 0.0
    plain = render_sample(parse_prompt("a plain red square moving right"), seed=3, spec=SPEC)[0]
    half = torch.cat([clean[:, :4], plain[:, 4:]], dim=1)  # the texture changes mid-clip
    assert score_video(half, attributes, SPEC)["subject_consistency"] < base["subject_consistency"] - 0.1
    wrong = score_video(plain, attributes, SPEC)
    assert wrong["texture"] == 0.0 and wrong["object_class"] == 1.0 and wrong["color"] == 1.0


def test_aggregation_is_vbenchs_weighted_quality_semantic_and_total():
    video_a = {**{d: 1.0 for d in QUALITY_WEIGHTS}, **{d: 1.0 for d in SEMANTIC_DIMENSIONS}}
    video_b = {**{d: 0.5 for d in QUALITY_WEIGHTS}, "dynamic_degree": 0.0, **{d: 0.0 for d in SEMANTIC_DIMENSIONS}}
    video_b["color"] = 1.0
    result = aggregate([video_a, video_b])
    # Means: five quality dims 0.75, dynamic degree 0.5; semantic 0.5, 0.5, 0.5, 1.0.
    quality = (5 * 0.75 + 0.5 * 0.5) / 5.5
    semantic = (0.5 + 1.0 + 0.5 + 0.5) / 4
    assert result["quality"] == pytest.approx(quality)
    assert result["semantic"] == pytest.approx(semantic)
    assert result["total"] == pytest.approx((4 * quality + semantic) / 5)


def test_teacher_agreement_is_psnr_and_ssim_per_video():
    reference = torch.rand(2, 3, 8, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.8
    shifted = reference + 0.1
    shifted[1] = reference[1]
    agreement = teacher_agreement(shifted, reference)
    assert agreement["psnr"][0] == pytest.approx(20.0, abs=1e-3)  # 10·log10(1 / 0.1²)
    assert math.isinf(agreement["psnr"][1]) and agreement["ssim"][1] == pytest.approx(1.0)
    assert agreement["ssim"][0] < 1.0
    with pytest.raises(ValueError, match="differ in shape"):
        teacher_agreement(shifted[:1], reference)


def test_nfe_counts_both_halves_of_a_guided_step(random_tiny_teacher):
    from dcm_lightning.sampling import denoiser, sample, seeded_noise

    teacher = random_tiny_teacher
    noise = seeded_noise([1, 2], teacher.latent_shape())
    condition = teacher.encode_prompts([PROMPT] * 2)
    sigmas = teacher.sigmas()[::10]  # 5 steps + the final level
    sigmas = torch.cat([sigmas, sigmas.new_zeros(1)]) if sigmas[-1] != 0 else sigmas
    steps = len(sigmas) - 1
    with count_forwards(teacher.network) as guided:
        sample(denoiser(teacher, condition, 4.0), teacher.parameterization, noise, sigmas)
    with count_forwards(teacher.network) as unguided:
        sample(denoiser(teacher, condition, 1.0), teacher.parameterization, noise, sigmas)
    assert guided.per_video(2) == 2 * steps and unguided.per_video(2) == steps
    assert nfe_bound_fraction(speedup=12.5, reference_nfe=100, nfe=4) == pytest.approx(0.5)
