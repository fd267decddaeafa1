"""TrainingSamples: what a real run's student makes of a few fixed prompts while it trains, and what
the teacher makes of them, as frame grids in TensorBoard and mp4s in the run's folder.

A real run trains from pre-encoded latents, usually without the teacher's text encoders and VAE
(a Llama-8B per GPU is too costly), so the callback brings its own: at the start rank 0 encodes the
prompts once (with the teacher's encoders if it has them, else with those of its pipeline folder,
loaded and freed again) and broadcasts the conditions; rank 0 alone keeps a decoder (the teacher's,
else the folder's VAE). The tiny tier's teacher has both and serves as it is.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from dcm_lightning.conditioning import TextCondition
from dcm_lightning.distributed import data_parallel_rank
from dcm_lightning.errors import UserError
from dcm_lightning.media import frame_grid, preview, prompt_slug, write_mp4
from dcm_lightning.sampling import Sampler, seeded_noise, student_sampler, teacher_sampler
from dcm_lightning.teachers.diffusers_base import DiffusersTeacherConfig, LatentVideoTeacher, PipelineCodec
from dcm_lightning.teachers.pretrained import load_codec


class TrainingSamples(L.Callback):
    """Every ``every_n_steps`` optimizer steps the student samples the fixed ``prompts`` in ``steps``
    steps; once, at the start of a fresh run, the teacher samples them with its own N steps and
    guidance. Prompt i starts from the noise of seed ``seed + i``, the same for teacher and student.
    Each round writes ``<run>/samples/step-<global_step>/<prompt>-<seed>.mp4`` (the teacher's:
    ``<run>/samples/teacher/``), logs ``samples/student`` (or ``samples/teacher``: a row per prompt, a
    few frames of each) to TensorBoard loggers and the round's wall time ``samples/<kind>_seconds`` to
    every logger, at ``trainer.global_step``. A resumed run samples from the next step block on and
    does not repeat the teacher (the callback's state is in the checkpoint).

    Ranks: under FSDP2 every rank holds a shard of the networks, so every rank runs every forward. A
    round goes in waves of one prompt per rank (rank r samples prompt ``first + r``; a rank past the
    last prompt repeats it and its copy is dropped), rank 0 gathers the latents, decodes, writes and
    logs.

    Time budget (rank 0's clock decides for all ranks): within a round, the next wave starts only if
    the seconds spent so far plus the slowest wave's fit in ``max_seconds``; the first always runs. A
    round that still took longer (one wave of many ranks, whose clips rank 0 decodes one by one) makes
    later rounds of its kind sample only the first ⌊n · max_seconds / seconds⌋ of its n prompts (at
    least one). Either is reported once per kind (teacher, student).

    The samples use their own noise generators and the training's random state is restored, so the
    run trains as it would without them.

    Args:
        prompts: the fixed prompts (any text).
        every_n_steps: optimizer steps between student rounds (Lightning's ``global_step``: the detail
            expert counts a G and a D step per batch).
        steps: the student's sampling steps (its schedule's split: DCM 2 + 2 for 4).
        seed: the noise seed of the first prompt; prompt i uses ``seed + i``.
        max_seconds: the time budget of one round (sampling, decoding, writing), see above.
        teacher_at_start: sample the teacher once at the start of the run.
        grid_frames: frames of each video shown in the TensorBoard grid (evenly spaced).
        grid_height: the grid's frames are downscaled to at most this many pixels high.
        tiled_decode: decode with the VAE's tiling where it has one (a VAE loaded from the pipeline
            folder; diffusers' HunyuanVideo pipeline advises it for 720p clips, which would otherwise
            need tens of GB beside the training run's memory). Off: the whole clip at once.
    """

    def __init__(
        self,
        prompts: list[str],
        every_n_steps: int = 500,
        steps: int = 4,
        seed: int = 0,
        max_seconds: float = 600.0,
        teacher_at_start: bool = True,
        grid_frames: int = 8,
        grid_height: int = 128,
        tiled_decode: bool = False,
    ) -> None:
        if not prompts:
            raise UserError("TrainingSamples needs at least one prompt.")
        if min(every_n_steps, steps, grid_frames, grid_height) < 1 or max_seconds <= 0:
            raise UserError(
                "TrainingSamples needs every_n_steps, steps, grid_frames, grid_height ≥ 1 and max_seconds > 0."
            )
        self.prompts, self.every_n_steps, self.steps, self.seed = list(prompts), every_n_steps, steps, seed
        self.max_seconds, self.teacher_at_start = max_seconds, teacher_at_start
        self.grid_frames, self.grid_height, self.tiled_decode = grid_frames, grid_height, tiled_decode
        self._teacher_sampled = False
        self._sampled_block = 0
        self._warned: set[str] = set()  # the kinds of round reported over budget
        self._limit: dict[str, int] = {}  # prompts a round of each kind may sample (budget)
        self._conditions: list[TextCondition] = []  # one per prompt, on the CPU, every rank
        self._decode: Callable[[Tensor], Tensor] | None = None  # rank 0 only
        self._settings: DiffusersTeacherConfig | None = None  # a pipeline teacher's settings

    # ---- hooks -------------------------------------------------------------------------------

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":  # on every rank, before any training: all fail together
            self._settings = _teacher_settings(pl_module)
            _check_parts(pl_module, self._settings)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sampled_block = trainer.global_step // self.every_n_steps  # a resumed run samples from here on
        with _forked_rng(pl_module.device):
            self._conditions, negative = self._encode(trainer, pl_module)
            self._decode = _decoder(pl_module, self._settings, self.tiled_decode) if trainer.is_global_zero else None
            if self.teacher_at_start and not self._teacher_sampled:
                with _negative_prompt(pl_module.teacher, negative):
                    self.sample_round(trainer, pl_module, teacher_sampler(pl_module.teacher), "teacher", "teacher")
                self._teacher_sampled = True

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        block = trainer.global_step // self.every_n_steps
        if block > self._sampled_block:
            self._sampled_block = block
            sampler = student_sampler(pl_module.student, pl_module.schedule, self.steps)
            with _forked_rng(pl_module.device):
                self.sample_round(trainer, pl_module, sampler, "student", f"step-{trainer.global_step}")

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._decode, self._conditions = None, []  # the VAE goes with the decoder

    def state_dict(self) -> dict:
        return {"teacher_sampled": self._teacher_sampled}

    def load_state_dict(self, state_dict: dict) -> None:
        self._teacher_sampled = state_dict["teacher_sampled"]

    # ---- a round -----------------------------------------------------------------------------

    def sample_round(
        self, trainer: L.Trainer, pl_module: L.LightningModule, sampler: Sampler, kind: str, folder: str
    ) -> float:
        """Sample the prompts in waves (see the class docstring), write and log; the round's seconds."""
        # The ranks of a context-parallel group sample one prompt together: prompts go by data-parallel rank.
        rank, world = data_parallel_rank(trainer)
        copies = trainer.world_size // world
        count = self._limit.get(kind, len(self._conditions))
        out = Path(trainer.default_root_dir) / self.folder_name / folder
        previews, slowest, done = [], 0.0, 0
        start = time.monotonic()
        was_training = pl_module.training
        pl_module.eval()
        try:
            for first in range(0, count, world):
                wave_start = time.monotonic()
                latents = self._latents(trainer, pl_module, sampler, min(first + rank, count - 1))
                if trainer.world_size > 1:  # (ranks·1) c f h w by global rank; one per data-parallel rank
                    latents = trainer.strategy.all_gather(latents).flatten(0, 1)[::copies]
                done = min(first + world, count)
                if trainer.is_global_zero:
                    previews += self._write(latents[: done - first], first, out, sampler.model)
                slowest = max(slowest, time.monotonic() - wave_start)
                fits = time.monotonic() - start + slowest <= self.max_seconds
                if done < count and not trainer.strategy.broadcast(fits, src=0):
                    break
        finally:
            pl_module.train(was_training)
        seconds = trainer.strategy.broadcast(time.monotonic() - start, src=0)  # the same on every rank
        if trainer.is_global_zero:
            self._log(trainer, kind, torch.cat(previews), seconds, sampler.model)
            self.round_written(trainer, kind, out, done)
        if seconds > self.max_seconds:
            self._limit[kind] = max(1, int(done * self.max_seconds / seconds))
        if (seconds > self.max_seconds or done < len(self.prompts)) and kind not in self._warned:
            self._warned.add(kind)
            rank_zero_warn(
                f"TrainingSamples: a round of {kind} samples took {seconds:.0f} s for {done} of "
                f"{len(self.prompts)} prompts (max_seconds {self.max_seconds:g}); rounds start no wave of "
                f"prompts that would not fit, and later {kind} rounds sample at most "
                f"{self._limit.get(kind, len(self.prompts))} prompts."
            )
        return seconds

    # What a subclass may change: the run subfolder, the file names and noise seeds, and what follows a round.
    folder_name = "samples"

    def video_name(self, index: int) -> str:
        return f"{prompt_slug(self.prompts[index], '-', 48)}-{self.noise_seed(index)}.mp4"

    def noise_seed(self, index: int) -> int:
        return self.seed + index

    def round_written(self, trainer: L.Trainer, kind: str, out: Path, count: int) -> None:
        """Rank 0, after a round's first ``count`` videos are written to ``out``."""

    def _latents(self, trainer: L.Trainer, pl_module: L.LightningModule, sampler: Sampler, index: int) -> Tensor:
        noise = seeded_noise([self.noise_seed(index)], sampler.model.latent_shape()).to(pl_module.device)
        condition = self._conditions[index].to(pl_module.device)
        with torch.no_grad(), trainer.precision_plugin.forward_context():  # the training step's autocast
            return sampler.latents(noise, condition)

    def _write(self, latents: Tensor, first: int, out: Path, model) -> list[Tensor]:
        """Decode each sample (one at a time: the VAE's memory), write its mp4; the grid's previews."""
        out.mkdir(parents=True, exist_ok=True)
        previews = []
        for offset, sample in enumerate(latents):
            index = first + offset
            video = self._decode(sample.unsqueeze(0)).float().cpu()  # 1 c f h w in [0, 1]
            write_mp4(out / self.video_name(index), video[0], fps=model.fps, upscale=model.display_upscale)
            previews.append(preview(video, self.grid_frames, self.grid_height))
        return previews

    def _log(self, trainer: L.Trainer, kind: str, previews: Tensor, seconds: float, model) -> None:
        grid = frame_grid(previews, upscale=model.display_upscale)  # c (b h) (f w)
        for logger in trainer.loggers:
            logger.log_metrics({f"samples/{kind}_seconds": seconds}, step=trainer.global_step)
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(f"samples/{kind}", grid, trainer.global_step)

    # ---- conditions ----------------------------------------------------------------------------

    def _encode(self, trainer: L.Trainer, pl_module: L.LightningModule):
        """Every prompt's condition (and CFG's negative prompt, when the teacher needs one it lacks),
        encoded on rank 0 and broadcast to all ranks, on the CPU."""
        encoded = None
        if trainer.is_global_zero:
            teacher = pl_module.teacher
            if _has_part(teacher, "text_encoders"):
                encode = lambda prompts: teacher.encode_prompts(prompts, open_vocabulary=True)  # noqa: E731
            else:
                encode = _codec(pl_module, self._settings, text_encoders=True).encode
            conditions = [_on_cpu(encode([prompt])) for prompt in self.prompts]
            negative = None
            if _needs_negative(teacher):
                negative = _on_cpu(encode([self._settings.negative_prompt]))
            del encode  # and with it the text encoders
            _free_memory()
            encoded = (conditions, negative)
        return trainer.strategy.broadcast(encoded, src=0)


# ---- the teacher's pipeline parts --------------------------------------------------------------


def _has_part(teacher, part: str) -> bool:
    """Whether the teacher encodes prompts (``text_encoders``) or decodes latents (``vae``) itself: the
    tiny teacher always, a pipeline teacher when its config loaded that part."""
    return not isinstance(teacher, LatentVideoTeacher) or getattr(teacher, f"has_{part}")


def _needs_negative(teacher) -> bool:
    """A CFG teacher loaded without text encoders has no negative prompt to guide against."""
    return isinstance(teacher, LatentVideoTeacher) and teacher.guidance_scale != 1.0 and teacher.negative is None


def _teacher_settings(pl_module: L.LightningModule) -> DiffusersTeacherConfig | None:
    """A pipeline teacher's settings (folder, dtype, negative prompt); None for the tiny teacher."""
    if not all(hasattr(pl_module, name) for name in ("teacher", "student", "schedule")):
        raise UserError("TrainingSamples samples a distillation module's student and teacher (SemE, DetE, LCM …).")
    return pl_module.teacher.settings if isinstance(pl_module.teacher, LatentVideoTeacher) else None


def _check_parts(pl_module: L.LightningModule, settings: DiffusersTeacherConfig | None) -> None:
    """The teacher encodes and decodes itself, or its pipeline folder has the parts that do."""
    teacher = pl_module.teacher
    if settings is None:
        return
    folder = Path(settings.path)
    missing = [p for p in teacher.text_parts if not (folder / p).is_dir()]
    missing = [] if _has_part(teacher, "text_encoders") else missing
    if not _has_part(teacher, "vae") and not (folder / "vae" / "config.json").is_file():
        missing.append("vae")
    if missing:
        raise UserError(
            f"TrainingSamples encodes its prompts and decodes its samples with the teacher's pipeline folder, "
            f"but {folder} has no {', '.join(f'{m}/' for m in missing)}."
        )


def _codec(pl_module: L.LightningModule, settings: DiffusersTeacherConfig, text_encoders: bool) -> PipelineCodec:
    """The teacher's pipeline folder's text encoders (``text_encoders``) or else its VAE, in the
    teacher's dtype on the module's device."""
    codec = load_codec(settings.path, settings.dtype, text_encoders=text_encoders, vae=not text_encoders)
    return codec.to(pl_module.device)


def _decoder(
    pl_module: L.LightningModule, settings: DiffusersTeacherConfig | None, tiled: bool
) -> Callable[[Tensor], Tensor]:
    """The teacher's own decoder, else its pipeline folder's VAE (``tiled``: with its tiling)."""
    teacher = pl_module.teacher
    if _has_part(teacher, "vae"):
        return teacher.decode
    codec = _codec(pl_module, settings, text_encoders=False)
    for module in codec.modules if tiled else ():
        if hasattr(module, "enable_tiling"):
            module.enable_tiling()
    return codec.decode


@contextmanager
def _negative_prompt(teacher, negative: TextCondition | None):
    """The teacher guided against ``negative`` for the duration (None: as it is)."""
    if negative is None:
        yield
        return
    teacher.negative = negative.to(teacher.device)
    try:
        yield
    finally:
        teacher.negative = None


# ---- small helpers -----------------------------------------------------------------------------


def _on_cpu(condition: TextCondition) -> TextCondition:
    """A condition as the training batches hold it (float32, bool mask), on the CPU for the broadcast."""
    pooled = None if condition.pooled is None else condition.pooled.float().cpu()
    return TextCondition(condition.embeds.float().cpu(), condition.mask.bool().cpu(), pooled)


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@contextmanager
def _forked_rng(device: torch.device):
    """The training's random state, untouched by what runs inside (model loading may draw from it)."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        yield
