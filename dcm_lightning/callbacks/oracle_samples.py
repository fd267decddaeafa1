"""The tiny tier's sample check during training: oracle accuracies plus a frame grid in TensorBoard.

It asks the module for videos (``pl_module.sample(prompts, seeds, steps)``, which every training module
has), so the modules carry no MovingShapes-specific validation and the real tier's configs simply
leave this callback out.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Callback

from dcm_lightning.errors import UserError
from dcm_lightning.evaluation.oracle_accuracy import oracle_accuracy
from dcm_lightning.media import frame_grid
from dcm_lightning.moving_shapes import parse_prompt
from dcm_lightning.moving_shapes.datasets import prompt_suite


class OracleSamples(Callback):
    """Every ``every_n_steps`` optimizer steps, the module samples a fixed MovingShapes prompt suite
    (one noise seed per prompt) and the oracle reads each video: ``{prefix}/shape_acc``, ``color_acc``,
    ``texture_acc``, ``direction_acc``, ``all_acc``, and the image ``{prefix}/samples`` (one row per
    video, one column per frame; the first 8 videos).

    Args:
        every_n_steps: optimizer steps between checks (Lightning's ``global_step``: the detail expert
            counts its G and D steps, so 250 is every 125 batches there).
        num_prompts: prompts of the suite.
        seed: draws the suite's prompts and noise seeds.
        steps: sampling steps; None takes the module's own (a teacher's N, a student's ``val_steps``).
        prefix: the logged tags' prefix.
    """

    def __init__(
        self,
        every_n_steps: int = 250,
        num_prompts: int = 16,
        seed: int = 1,
        steps: int | None = None,
        prefix: str = "val",
    ) -> None:
        if every_n_steps < 1 or num_prompts < 1:
            raise UserError("OracleSamples needs every_n_steps and num_prompts of at least 1.")
        self.every_n_steps, self.steps, self.prefix = every_n_steps, steps, prefix
        self.cases = prompt_suite(num_prompts, 1, base_seed=seed)
        self._checked_block = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._checked_block = trainer.global_step // self.every_n_steps  # a resumed run checks from here on

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        block = trainer.global_step // self.every_n_steps
        if block > self._checked_block:
            self._checked_block = block
            self.check(trainer, pl_module)

    def check(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        """Sample, score and log once (in eval mode, as a validation loop would)."""
        was_training = pl_module.training
        pl_module.eval()
        try:
            prompts, seeds = [c.prompt for c in self.cases], [c.seed for c in self.cases]
            videos = pl_module.sample(prompts, seeds, self.steps).float().cpu()
        finally:
            pl_module.train(was_training)
        spec = pl_module.spec if hasattr(pl_module, "spec") else pl_module.student.spec
        scores = oracle_accuracy(videos, [parse_prompt(p) for p in prompts], spec)
        # Straight to the loggers at this optimizer step (every rank computed the same numbers).
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics({f"{self.prefix}/{k}": v for k, v in scores.items()}, step=trainer.global_step)
                if hasattr(getattr(logger, "experiment", None), "add_image"):
                    grid = frame_grid(videos[:8], upscale=2)
                    logger.experiment.add_image(f"{self.prefix}/samples", grid, trainer.global_step)
        return scores
