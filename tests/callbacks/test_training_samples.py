"""TrainingSamples: a real run's samples while it trains — the student's every n steps and the
teacher's once at the start, as mp4s in the run's folder and frame grids in TensorBoard — from a
pipeline folder whose text encoders and VAE the run itself does not load; continued on resume;
within a time budget."""

from __future__ import annotations

import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path
from types import SimpleNamespace

import imageio.v3 as iio
import lightning as L
import numpy as np
import pytest
import torch
import yaml
from einops import rearrange
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dcm_lightning.callbacks import TrainingSamples, training_samples
from dcm_lightning.cli import main
from dcm_lightning.conditioning import TextCondition
from dcm_lightning.generation import student_module_from_checkpoint
from dcm_lightning.media import frame_grid, preview, to_uint8
from dcm_lightning.modules import SemEModule
from dcm_lightning.sampling import seeded_noise, student_sampler, teacher_sampler
from dcm_lightning.teachers.pretrained import load_pipeline_teacher
from tests.modules.test_real_teachers import real_config
from tests.tiny_diffusers import VIDEO, teacher_settings, write_latents, write_pipeline_folder

PROMPTS = ["a red cat runs in the snow", "the blue dog jumps"]
FILES = ["a-red-cat-runs-in-the-snow-0.mp4", "the-blue-dog-jumps-1.mp4"]  # <prompt>-<seed>
GRID_FRAMES = 4
KAPPA = 5  # of the tiny teachers' 10-step grids


def samples_config(tmp_path: Path, family: str, folder: Path, max_steps: int, samples: bool = True) -> Path:
    """SemE on the tiny pipeline folder from latents, without text encoders or VAE (the run loads
    neither), a TensorBoard logger, and the callback every 2 steps."""
    path = real_config(
        tmp_path, "seme", family, max_steps, teacher=teacher_settings(folder, guidance_scale=1.0), boundary_index=KAPPA
    )
    config = yaml.safe_load(path.read_text())
    root = config["trainer"]["default_root_dir"]
    config["trainer"]["logger"] = {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": root, "name": "tensorboard"},
    }
    if samples:
        callback = {"prompts": PROMPTS, "every_n_steps": 2, "grid_frames": GRID_FRAMES}
        config["trainer"]["callbacks"].append(
            {"class_path": "dcm_lightning.callbacks.TrainingSamples", "init_args": callback}
        )
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module", params=["wan", "hunyuan_video"])  # HunyuanVideo: a pooled text vector too
def runs(request, tmp_path_factory):
    family = request.param
    tmp_path = tmp_path_factory.mktemp(family)
    folder = write_pipeline_folder(family, tmp_path / "pipeline", full=True)
    write_latents(family, tmp_path / "latents")
    main(["fit", "--config", str(samples_config(tmp_path, family, folder, 3))])
    root = tmp_path / "seme"
    teacher_files = {p.name: p.stat().st_mtime_ns for p in (root / "samples" / "teacher").iterdir()}
    interrupted = root / "checkpoints" / "epoch=0-step=3.ckpt"
    main(["fit", "--config", str(samples_config(tmp_path, family, folder, 4)), "--ckpt_path", str(interrupted)])
    return SimpleNamespace(family=family, folder=folder, root=root, teacher_files=teacher_files)


def logged_images(root: Path, version: int) -> dict[str, dict[int, np.ndarray]]:
    """Every image of a run's TensorBoard log: tag → step → h w c uint8."""
    events = EventAccumulator(str(root / "tensorboard" / f"version_{version}"), size_guidance={"images": 0})
    events.Reload()
    return {
        tag: {e.step: iio.imread(e.encoded_image_string, extension=".png") for e in events.Images(tag)}
        for tag in events.Tags()["images"]
    }


def logged_scalars(root: Path, version: int, tag: str) -> list[int]:
    events = EventAccumulator(str(root / "tensorboard" / f"version_{version}"))
    events.Reload()
    return [e.step for e in events.Scalars(tag)] if tag in events.Tags()["scalars"] else []


def grid_of(videos: torch.Tensor) -> np.ndarray:
    """The grid the callback logs of these videos (b c f h w): a row per video, GRID_FRAMES frames."""
    return rearrange(to_uint8(frame_grid(preview(videos, GRID_FRAMES))), "c h w -> h w c")


def reference_teacher(folder: Path, guidance_scale: float = 1.0):
    """The same teacher loaded whole (text encoders and VAE), as a user would sample it."""
    settings = teacher_settings(folder, guidance_scale=guidance_scale)
    del settings["path"]
    return load_pipeline_teacher(folder, **settings)


def test_the_teacher_once_and_the_student_every_n_steps_are_written_as_mp4s(runs):
    samples = runs.root / "samples"
    assert sorted(p.name for p in samples.iterdir()) == ["step-2", "step-4", "teacher"]
    for folder in ("teacher", "step-2", "step-4"):
        assert sorted(p.name for p in (samples / folder).iterdir()) == FILES, folder
    frames, height, width, _ = iio.improps(samples / "step-2" / FILES[0], plugin="pyav").shape
    assert (frames, height, width) == (VIDEO["num_frames"], VIDEO["height"], VIDEO["width"])  # the whole clip


def test_the_grids_show_the_teachers_and_the_students_own_videos(runs):
    """Decoded by the folder's VAE from conditions of the folder's text encoders, which the training
    run never loaded: the logged grids are what the whole pipeline makes of the prompts."""
    images = logged_images(runs.root, 0)
    assert sorted(images) == ["samples/student", "samples/teacher"]
    assert sorted(images["samples/teacher"]) == [0] and sorted(images["samples/student"]) == [2]
    teacher = reference_teacher(runs.folder)
    seeds = [0, 1]
    expected = grid_of(teacher_sampler(teacher).videos(PROMPTS, seeds))
    assert expected.shape == (2 * VIDEO["height"], GRID_FRAMES * VIDEO["width"], 3)  # a row per prompt
    assert np.abs(images["samples/teacher"][0].astype(int) - expected).max() <= 1

    module, _ = student_module_from_checkpoint(runs.root / "checkpoints" / "epoch=0-step=2.ckpt")
    noise = seeded_noise(seeds, teacher.latent_shape())
    latents = student_sampler(module.student, module.schedule, 4).latents(noise, teacher.encode_prompts(PROMPTS))
    expected = grid_of(teacher.decode(latents))
    assert np.abs(images["samples/student"][2].astype(int) - expected).max() <= 1
    assert logged_scalars(runs.root, 0, "samples/teacher_seconds") == [0]
    assert logged_scalars(runs.root, 0, "samples/student_seconds") == [2]


def test_a_resumed_run_samples_the_next_block_and_not_the_teacher_again(runs):
    resumed = logged_images(runs.root, 1)
    assert sorted(resumed) == ["samples/student"] and sorted(resumed["samples/student"]) == [4]
    teacher = runs.root / "samples" / "teacher"
    assert {p.name: p.stat().st_mtime_ns for p in teacher.iterdir()} == runs.teacher_files  # not rewritten


def test_sampling_leaves_the_training_run_unchanged(runs, tmp_path):
    """The weights after 3 steps equal those of a run without the callback."""
    write_latents(runs.family, tmp_path / "latents")
    main(["fit", "--config", str(samples_config(tmp_path, runs.family, runs.folder, 3, samples=False))])
    plain = torch.load(tmp_path / "seme" / "checkpoints" / "epoch=0-step=3.ckpt", weights_only=True)
    sampled = torch.load(runs.root / "checkpoints" / "epoch=0-step=3.ckpt", weights_only=True)
    for key, value in plain["state_dict"].items():
        assert torch.equal(sampled["state_dict"][key], value), key


def test_a_folder_without_text_encoders_or_vae_is_refused_before_training(tmp_path, capsys):
    folder = write_pipeline_folder("wan", tmp_path / "pipeline")  # transformer and scheduler only
    write_latents("wan", tmp_path / "latents")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(samples_config(tmp_path, "wan", folder, 1))])
    assert exit_info.value.code == 2
    assert "has no text_encoder/, tokenizer/, vae/" in capsys.readouterr().err
    assert not (tmp_path / "seme" / "checkpoints").exists()


def test_a_guided_teacher_without_text_encoders_is_guided_against_the_folders_negative_prompt(tmp_path):
    """From a trajectory cache a Wan or CogVideoX teacher may train without its text encoders, so
    without the negative prompt CFG needs: the callback encodes it too, for the teacher's round only."""
    folder = write_pipeline_folder("wan", tmp_path / "pipeline", full=True)
    module = SemEModule(teacher=teacher_settings(folder, guidance_scale=5.0), boundary_index=KAPPA)
    assert module.teacher.negative is None
    logger = TensorBoardLogger(tmp_path, name="tensorboard", version=0)
    callback = TrainingSamples(PROMPTS, grid_frames=GRID_FRAMES)
    trainer = stand_in_trainer(tmp_path, [logger])
    callback.setup(trainer, module, "fit")
    callback.on_train_start(trainer, module)
    logger.finalize("success")
    expected = grid_of(teacher_sampler(reference_teacher(folder, guidance_scale=5.0)).videos(PROMPTS, [0, 1]))
    assert np.abs(logged_images(tmp_path, 0)["samples/teacher"][0].astype(int) - expected).max() <= 1
    assert module.teacher.negative is None  # the teacher is left as it was


# ---- the time budget, on a stand-in trainer whose clock advances 10 s per sample and per decode --------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


def stand_in_trainer(root: Path, loggers=(), global_step: int = 0, world_size: int = 1) -> SimpleNamespace:
    """What the callback reads of rank 0 of a Trainer (``world_size`` ranks that sample alike)."""
    strategy = SimpleNamespace(
        global_rank=0,
        world_size=world_size,
        broadcast=lambda obj, src=0: obj,
        all_gather=lambda t: torch.stack([t] * world_size),
    )
    return SimpleNamespace(
        global_rank=0,
        world_size=world_size,
        is_global_zero=True,
        strategy=strategy,
        precision_plugin=SimpleNamespace(forward_context=nullcontext),
        default_root_dir=str(root),
        loggers=list(loggers),
        global_step=global_step,
    )


PROMPTS_4 = ["one", "two", "three", "four"]
FILES_4 = ["one-0.mp4", "two-1.mp4", "three-2.mp4", "four-3.mp4"]


def timed_callback(max_seconds: float, clock: _Clock) -> TrainingSamples:
    def ten_seconds(tensor):
        clock.now += 10.0
        return tensor.sigmoid()

    callback = TrainingSamples(PROMPTS_4, max_seconds=max_seconds)
    callback._conditions = [TextCondition(torch.zeros(1, 1, 1), torch.ones(1, 1, dtype=torch.bool))] * 4
    callback._decode = ten_seconds
    model = SimpleNamespace(latent_shape=lambda: (3, 2, 16, 16), fps=8, display_upscale=1)
    callback.sampler = SimpleNamespace(model=model, latents=lambda noise, condition: ten_seconds(noise))
    return callback


def sample_round(callback: TrainingSamples, root: Path, step: int, world_size: int = 1) -> list[str]:
    """One student round at ``step``; the mp4s it wrote."""
    trainer = stand_in_trainer(root, global_step=step, world_size=world_size)
    callback.sample_round(trainer, L.LightningModule(), callback.sampler, "student", f"step-{step}")
    return sorted(p.name for p in (root / "samples" / f"step-{step}").iterdir())


@contextmanager
def said_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@pytest.mark.parametrize(("max_seconds", "sampled"), [(85.0, 4), (45.0, 2), (5.0, 1)])
def test_one_rank_starts_no_prompt_that_would_overrun_the_budget_and_says_so_once(
    max_seconds, sampled, tmp_path, monkeypatch
):
    """One rank: a wave is one prompt, 20 s (sample + decode); the next starts if it fits."""
    clock = _Clock()
    monkeypatch.setattr(training_samples, "time", clock)
    callback = timed_callback(max_seconds, clock)
    with pytest.warns(UserWarning, match=f"{sampled} of 4 prompts") if sampled < 4 else said_nothing():
        assert sample_round(callback, tmp_path, 2) == sorted(FILES_4[:sampled])
    assert clock.now == 20.0 * sampled
    with said_nothing():  # said once
        assert sample_round(callback, tmp_path, 4) == sorted(FILES_4[:sampled])


def test_a_round_of_one_wave_over_budget_samples_fewer_prompts_in_later_rounds(tmp_path, monkeypatch):
    """Four ranks: one wave samples all four prompts in 10 s, rank 0 decodes them in 40 s: 50 s against
    a budget of 25 s, so later rounds sample ⌊4 · 25 / 50⌋ = 2 prompts (30 s, then 1 prompt)."""
    clock = _Clock()
    monkeypatch.setattr(training_samples, "time", clock)
    callback = timed_callback(25.0, clock)
    with pytest.warns(UserWarning, match="took 50 s for 4 of 4 prompts.*at most 2 prompts"):
        assert sample_round(callback, tmp_path, 2, world_size=4) == sorted(FILES_4)
    with said_nothing():
        assert sample_round(callback, tmp_path, 4, world_size=4) == sorted(FILES_4[:2])
        assert sample_round(callback, tmp_path, 6, world_size=4) == sorted(FILES_4[:1])


# ---- FSDP2 on 2 CPU processes ------------------------------------------------------------------------


SPLIT = {"class_path": "dcm_lightning.strategies.ContextParallelStrategy", "init_args": {"ulysses": 2}}


@pytest.mark.slow
@pytest.mark.parametrize("split", [False, True], ids=["fsdp2", "context_parallel"])
def test_under_fsdp2_every_rank_samples_and_rank_zero_writes_every_prompt_in_order(tmp_path, split):
    """3 prompts on 2 ranks: two waves (the second rank repeats the last prompt in the second), the
    latents gathered to rank 0 in prompt order; SemE, then DetE from its sharded checkpoint. Split
    (context parallelism, one data-parallel group of 2): both ranks sample each prompt together, in
    three waves, and rank 0 writes the same videos."""
    from tests.test_fsdp import SHARDED, run_cli

    strategy = SPLIT if split else SHARDED

    prompts = [*PROMPTS, "a dog in the snow"]
    folder = write_pipeline_folder("hunyuan_video", tmp_path / "pipeline", full=True)
    write_latents("hunyuan_video", tmp_path / "latents")
    path = samples_config(tmp_path, "hunyuan_video", folder, 2)
    config = yaml.safe_load(path.read_text())
    config["trainer"].update(devices=2, strategy=strategy)
    config["trainer"]["callbacks"][-1]["init_args"]["prompts"] = prompts
    path.write_text(yaml.safe_dump(config))
    run_cli(["fit", "--config", str(path)], tmp_path)

    root = tmp_path / "seme"
    names = [*FILES, "a-dog-in-the-snow-2.mp4"]
    for folder_name in ("teacher", "step-2"):
        assert sorted(p.name for p in (root / "samples" / folder_name).iterdir()) == sorted(names), folder_name
    images = logged_images(root, 0)
    teacher = reference_teacher(folder)
    expected = grid_of(teacher_sampler(teacher).videos(prompts, [0, 1, 2]))
    assert np.abs(images["samples/teacher"][0].astype(int) - expected).max() <= 1
    semantic = root / "checkpoints" / "epoch=0-step=2.ckpt"  # a sharded folder, read whole
    module, _ = student_module_from_checkpoint(semantic)
    noise = seeded_noise([0, 1, 2], teacher.latent_shape())
    latents = student_sampler(module.student, module.schedule, 4).latents(noise, teacher.encode_prompts(prompts))
    assert np.abs(images["samples/student"][2].astype(int) - grid_of(teacher.decode(latents))).max() <= 1

    dete = real_config(
        tmp_path,
        "dete",
        "hunyuan_video",
        2,  # one batch: a G and a D step
        semantic_checkpoint=str(semantic),
        detail={"lora_rank": 4},
        discriminator={"hidden_dim": 32},
    )
    config = yaml.safe_load(dete.read_text())
    config["trainer"].update(devices=2, strategy=strategy)
    samples = {"prompts": prompts, "every_n_steps": 2, "teacher_at_start": False}
    config["trainer"]["callbacks"].append(
        {"class_path": "dcm_lightning.callbacks.TrainingSamples", "init_args": samples}
    )
    dete.write_text(yaml.safe_dump(config))
    run_cli(["fit", "--config", str(dete)], tmp_path)
    written = tmp_path / "dete" / "samples"
    assert [p.name for p in written.iterdir()] == ["step-2"]
    assert sorted(p.name for p in (written / "step-2").iterdir()) == sorted(names)
