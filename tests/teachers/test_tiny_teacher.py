import pytest
import torch

from dcm_lightning.errors import UserError
from dcm_lightning.teachers.tiny import SHIPPED_TINY_TEACHER, TinyTeacher


def _batch(teacher, sigma=0.7):
    x = torch.randn(2, *teacher.latent_shape(), generator=torch.Generator().manual_seed(1))
    condition = teacher.encode_prompts(["a striped red triangle moving left", "a plain blue circle moving up"])
    return x, torch.full((2,), sigma), condition


def test_predictions_are_consistent_with_the_noisy_input(random_tiny_teacher):
    x, sigma, condition = _batch(random_tiny_teacher)
    prediction = random_tiny_teacher.predict(x, sigma, condition)
    # x_σ = (1 − σ)·x̂0 + σ·ε̂ holds for any network output.
    torch.testing.assert_close((1 - 0.7) * prediction.x0 + 0.7 * prediction.eps, x)


def test_guidance_scale_one_runs_only_the_conditional_branch(random_tiny_teacher):
    x, sigma, condition = _batch(random_tiny_teacher)
    guided = random_tiny_teacher.predict(x, sigma, condition, guidance_scale=1.0)
    network = random_tiny_teacher.network
    v = network(x, 1000 * sigma, condition.embeds, condition.mask)
    torch.testing.assert_close(guided.x0, x - sigma.view(-1, 1, 1, 1, 1) * v)
    stronger = random_tiny_teacher.predict(x, sigma, condition, guidance_scale=4.0)
    assert not torch.allclose(stronger.x0, guided.x0)


def test_features_are_returned_per_requested_block(random_tiny_teacher):
    x, sigma, condition = _batch(random_tiny_teacher)
    prediction = random_tiny_teacher.predict(x, sigma, condition, feature_blocks=(1,))
    assert len(prediction.features) == 1 and prediction.features[0].shape == (2, 256, 32)


def test_save_and_load_round_trip_exactly_in_float32(random_tiny_teacher, tmp_path):
    random_tiny_teacher.save_pretrained(tmp_path / "teacher", dtype=torch.float32)
    loaded = TinyTeacher.from_pretrained(tmp_path / "teacher")
    x, sigma, condition = _batch(random_tiny_teacher)
    torch.testing.assert_close(
        loaded.predict(x, sigma, condition).x0, random_tiny_teacher.predict(x, sigma, condition).x0, rtol=0, atol=0
    )
    assert (loaded.shift, loaded.guidance_scale, loaded.num_steps) == (3.0, 4.0, 50)


def test_a_folder_without_weights_is_refused(tmp_path):
    with pytest.raises(UserError, match="is not a tiny-teacher folder"):
        TinyTeacher.from_pretrained(tmp_path)


def test_the_shipped_teacher_loads_and_is_small():
    weights = SHIPPED_TINY_TEACHER / "model.safetensors"
    assert weights.stat().st_size < 8 * 2**20
    teacher = TinyTeacher.from_pretrained()
    assert teacher.num_steps == 50 and teacher.latent_shape() == (3, 8, 32, 32)
    assert teacher.config_dict()["network"]["width"] == 128
