import pytest
import torch

from dcm_lightning.errors import UserError
from dcm_lightning.moving_shapes import (
    MovingShapesSpec,
    MovingShapesTextEncoder,
    ShapeAttributes,
    all_attributes,
    analyze_clip,
    parse_prompt,
)
from dcm_lightning.moving_shapes.datasets import MovingShapesClips, prompt_suite
from dcm_lightning.moving_shapes.render import render_sample
from dcm_lightning.randomness import clip_seed

SPEC = MovingShapesSpec()


def test_the_same_seed_renders_the_same_pixels_and_another_seed_does_not():
    attributes = ShapeAttributes("triangle", "red", "striped", "left")
    first, _ = render_sample(attributes, 7, SPEC)
    again, _ = render_sample(attributes, 7, SPEC)
    other, _ = render_sample(attributes, 8, SPEC)
    assert first.shape == (3, 8, 32, 32)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0


def test_the_shape_stays_inside_the_frame_and_moves_the_named_way():
    for index, attributes in enumerate(all_attributes()):
        video, motion = render_sample(attributes, clip_seed(3, index), SPEC)
        analysis = analyze_clip(video, SPEC)
        assert not analysis.centroids.isnan().any(), attributes
        border = analysis.masks[:, [0, -1], :].any() or analysis.masks[:, :, [0, -1]].any()
        assert not border, f"{attributes} touches the border"


def test_the_oracle_recovers_at_least_99_percent_of_attributes_on_clean_renders():
    total = hits = 0
    for seed in range(3):
        for index, attributes in enumerate(all_attributes()):
            video, _ = render_sample(attributes, clip_seed(seed, index), SPEC)
            matches = analyze_clip(video, SPEC).matches(attributes)
            total += len(matches)
            hits += sum(matches.values())
    assert hits / total >= 0.99, f"oracle accuracy {hits / total:.4f}"


def test_the_oracle_says_no_shape_on_an_empty_frame_and_no_direction_when_static():
    background = torch.tensor(SPEC.background).view(3, 1, 1, 1).expand(3, 8, 32, 32)
    empty = analyze_clip(background, SPEC)
    assert empty.shape is None and empty.direction is None
    video, _ = render_sample(ShapeAttributes("square", "blue", "plain", "right"), 0, SPEC)
    frozen = video[:, :1].expand_as(video)
    assert analyze_clip(frozen, SPEC).direction is None


def test_the_track_residual_is_zero_for_straight_motion_and_grows_with_jitter():
    video, _ = render_sample(ShapeAttributes("circle", "green", "plain", "down"), 1, SPEC)
    assert analyze_clip(video, SPEC).track_residual < 0.15
    jittered = video.clone()
    jittered[:, 3] = torch.roll(video[:, 3], shifts=3, dims=-1)
    assert analyze_clip(jittered, SPEC).track_residual > 0.5


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("a striped purple triangle moving left", "'purple' is not in the MovingShapes vocabulary"),
        ("a striped red triangle", "does not name a direction"),
        ("a red blue circle moving up plain", "names two colors"),
    ],
)
def test_bad_prompts_are_refused_with_one_sentence(prompt, message):
    with pytest.raises(UserError, match=message):
        parse_prompt(prompt)


def test_prompts_round_trip_through_the_parser():
    for attributes in all_attributes():
        assert parse_prompt(attributes.prompt) == attributes


def test_text_encoder_is_fixed_and_the_empty_prompt_is_null():
    condition = MovingShapesTextEncoder().encode(["a plain red circle moving up", ""])
    again = MovingShapesTextEncoder().encode(["a plain red circle moving up"])
    torch.testing.assert_close(condition.embeds[:1], again.embeds)
    assert condition.mask[0].sum() == 6 and not condition.mask[1].any()
    with pytest.raises(UserError):
        MovingShapesTextEncoder().encode(["a plain red hexagon moving up"])


def test_spec_refuses_clips_too_small_or_too_fast():
    with pytest.raises(UserError, match="at least 8 frames"):
        MovingShapesSpec(frames=4)
    with pytest.raises(UserError, match="leaves a"):
        MovingShapesSpec(speed=(3.0, 4.0))


def test_training_clips_are_deterministic_and_labelled():
    clips = MovingShapesClips(16, seed=0, spec=SPEC)
    item = clips[5]
    assert torch.equal(item["video"], clips[5]["video"])
    assert item["video"].min() >= -1 and item["video"].max() <= 1
    analysis = analyze_clip((item["video"] + 1) / 2, SPEC)
    assert all(analysis.matches(parse_prompt(item["prompt"])).values())


def test_prompt_suite_is_fixed_and_covers_every_attribute_value():
    suite = prompt_suite(64, 2, base_seed=1000)
    assert suite == prompt_suite(64, 2, base_seed=1000)
    assert len(suite) == 128 and len({c.seed for c in suite}) == 128
    for field, values in (("shape", 3), ("color", 6), ("texture", 2), ("direction", 4)):
        assert len({getattr(c.attributes, field) for c in suite}) == values


def test_stray_pixels_do_not_change_what_the_oracle_reads():
    attributes = ShapeAttributes("circle", "yellow", "plain", "left")
    video, _ = render_sample(attributes, 11, SPEC)
    speckled = video.clone()
    speckled[:, :, 1, 1] = 1.0  # one bright pixel in a corner of every frame
    speckled[:, :, 30, 2] = 0.8
    clean, noisy = analyze_clip(video, SPEC), analyze_clip(speckled, SPEC)
    assert all(noisy.matches(attributes).values())
    torch.testing.assert_close(noisy.centroids, clean.centroids)


def test_an_irregular_blob_is_no_shape():
    blob = torch.zeros(32, 32, dtype=torch.bool)
    blob[8:20, 10:13] = True  # an L: a tall bar with a foot
    blob[17:20, 10:24] = True
    from dcm_lightning.moving_shapes.analyzer import _classify_shape

    assert _classify_shape(blob) is None
