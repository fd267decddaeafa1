import torch

from dcm_lightning.diffusion import teacher_sigmas
from dcm_lightning.sampling import denoiser, sample, seeded_noise


def test_one_step_from_pure_noise_returns_the_x0_prediction(random_tiny_teacher):
    noise = seeded_noise([0, 1], random_tiny_teacher.latent_shape())
    condition = random_tiny_teacher.encode_prompts(["a plain red circle moving up"] * 2)
    one_step = sample(
        denoiser(random_tiny_teacher, condition), random_tiny_teacher.parameterization, noise, torch.tensor([1.0, 0.0])
    )
    prediction = random_tiny_teacher.predict(noise, torch.ones(2), condition)
    torch.testing.assert_close(one_step, prediction.x0)


def test_the_default_schedule_is_the_teachers_n_step_grid(random_tiny_teacher):
    calls = []
    original = random_tiny_teacher.predict

    def counting_predict(x, sigma, *args, **kwargs):
        calls.append(float(sigma[0]))
        return original(x, sigma, *args, **kwargs)

    random_tiny_teacher.predict = counting_predict
    noise = seeded_noise([0], random_tiny_teacher.latent_shape())
    sample(
        denoiser(random_tiny_teacher, random_tiny_teacher.encode_prompts(["a plain red circle moving up"])),
        random_tiny_teacher.parameterization,
        noise,
        random_tiny_teacher.sigmas(),
    )
    expected = teacher_sigmas(50, 3.0)[:-1].float().tolist()
    assert len(calls) == 50
    torch.testing.assert_close(torch.tensor(calls), torch.tensor(expected))


def test_sampling_is_deterministic_given_the_seed(random_tiny_teacher):
    condition = random_tiny_teacher.encode_prompts(["a striped cyan square moving down"])
    sigmas = teacher_sigmas(4, 3.0)
    first = sample(
        denoiser(random_tiny_teacher, condition),
        random_tiny_teacher.parameterization,
        seeded_noise([5], random_tiny_teacher.latent_shape()),
        sigmas,
    )
    again = sample(
        denoiser(random_tiny_teacher, condition),
        random_tiny_teacher.parameterization,
        seeded_noise([5], random_tiny_teacher.latent_shape()),
        sigmas,
    )
    torch.testing.assert_close(first, again, rtol=0, atol=0)
