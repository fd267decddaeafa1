"""NonFiniteGuard: a NaN or Inf in a loss term or a gradient stops the run (or skips the step) before
the optimizer applies it, so no checkpoint with non-finite weights is ever written.

It looks right before every optimizer step (``on_before_optimizer_step``: after backward and any
clipping, in automatic and in manual optimization alike, so both of the detail expert's steps): at
the loss terms the module logged this step (``train/…``) and at the gradients of the parameters the
optimizer holds. The ranks agree (one all-gather of a flag per step), so every rank stops or skips
together; the message names the step, the terms (or the first parameter) and the ranks that saw
them. ``skip`` drops the step's gradients (the optimizer leaves every parameter and moment as they
were) and counts it in ``train/skipped_steps``. Independently, a checkpoint about to be written
with a non-finite weight is refused.
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
from torch import Tensor

from dcm_lightning.errors import UserError


def _local(tensor: Tensor) -> Tensor:
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor  # an FSDP2 shard: this rank's part


def non_finite_terms(metrics: dict[str, Tensor], prefix: str = "train/") -> list[str]:
    """The logged terms under ``prefix`` whose value is NaN or ±Inf, sorted."""
    return sorted(
        name
        for name, value in metrics.items()
        if name.startswith(prefix) and torch.is_tensor(value) and not torch.isfinite(value).all()
    )


def first_non_finite_gradient(optimizer: torch.optim.Optimizer, module: torch.nn.Module) -> str | None:
    """The name (in ``module``) of the first parameter of ``optimizer`` whose gradient (this rank's part)
    is not finite; one device synchronization when all are finite."""
    gradients = [(p, _local(p.grad)) for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not gradients:
        return None
    finite = torch.stack([torch.isfinite(g).all() for _, g in gradients])
    if bool(finite.all()):
        return None
    first = gradients[int((~finite).nonzero()[0])][0]
    return next((name for name, p in module.named_parameters() if p is first), "an unnamed parameter")


def _ranks_with(trainer: L.Trainer, flag: bool, device: torch.device) -> list[int]:
    """The ranks on which ``flag`` holds (every rank calls this together)."""
    flags = trainer.strategy.all_gather(torch.tensor([flag], device=device)).reshape(-1).tolist()
    return [rank for rank, value in enumerate(flags) if value]


class NonFiniteGuard(L.Callback):
    """Stop (``action: stop``, one sentence, exit status 2) or skip (``action: skip``) an optimizer
    step whose loss terms or gradients are not finite, on every rank together.

    Args:
        action: ``stop`` ends the run before the step is applied; ``skip`` drops that step's gradients
            and trains on (``train/skipped_steps`` counts them).
    """

    def __init__(self, action: Literal["stop", "skip"] = "stop") -> None:
        if action not in ("stop", "skip"):
            raise UserError(f"NonFiniteGuard action must be 'stop' or 'skip', got {action!r}.")
        self.action = action
        self.skipped = 0
        self._seen: dict[str, Tensor] = {}

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        fresh = {k: v for k, v in trainer.callback_metrics.items() if v is not self._seen.get(k)}
        self._seen.update(fresh)  # a term not logged again this step keeps its object: not looked at twice
        terms = non_finite_terms(fresh)
        gradient = first_non_finite_gradient(optimizer, pl_module)
        ranks = _ranks_with(trainer, bool(terms or gradient), pl_module.device)
        if not ranks:
            return
        if self.action == "skip":
            optimizer.zero_grad(set_to_none=True)  # AdamW leaves parameters without a gradient untouched
            self.skipped += 1
            pl_module.log("train/skipped_steps", float(self.skipped), rank_zero_only=True)
            return
        with_terms = _ranks_with(trainer, bool(terms), pl_module.device)  # where it started: gradients spread
        if terms:
            what = f"non-finite loss terms {', '.join(terms)}"
        else:
            what = f"a non-finite gradient of {gradient}" if gradient else "a non-finite value on another rank"
        raise UserError(
            f"step {trainer.global_step}, rank {trainer.global_rank}: {what} (loss terms non-finite on ranks "
            f"{with_terms}, a loss term or gradient on ranks {ranks}); stopped before applying the step — lower "
            "the learning rate or check the data, or set NonFiniteGuard's action: skip."
        )

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        state = checkpoint.get("state_dict", {})
        bad = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(_local(v)).all()), None)
        if _ranks_with(trainer, bad is not None, pl_module.device):
            raise UserError(
                f"step {trainer.global_step}: weight {bad or '(of another rank)'} is not finite; the checkpoint "
                "was not written."
            )

    def state_dict(self) -> dict:
        return {"skipped": self.skipped}

    def load_state_dict(self, state_dict: dict) -> None:
        self.skipped = state_dict.get("skipped", 0)
