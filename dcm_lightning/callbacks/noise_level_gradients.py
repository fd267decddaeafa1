"""NoiseLevelGradients: the observation DCM starts from — loss and gradient norm differ sharply
between high- and low-noise samples — measured live on the run being trained.

Every ``every_n_batches`` training batches the callback takes a fixed probe (the same trajectories,
or data latents, at every noise level) at B grid indices spread over what the module trains on,
and logs per index the module's consistency loss and the global norm of its gradient with respect
to the trainable parameters, plus a figure of both curves over σ (TensorBoard). It reads the run
without changing it: the RNG stream is forked, the gradients the optimizer may still hold are
restored, the optimizer is never touched. Under FSDP2 the norm is reduced over the shards (every
rank computes the same probe, so the averaged gradient is the probe's own); under DDP the probe's
backward runs without gradient sync, which on an identical probe is the same gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import lightning as L
import torch
from torch import Tensor

from dcm_lightning.errors import UserError


def bucket_indices(training_indices: Sequence[int], num_buckets: int) -> list[int]:
    """B grid indices spread evenly over the indices a module trains on, high noise first (all of
    them when there are no more than B)."""
    ordered = sorted(set(training_indices), reverse=True)
    if num_buckets >= len(ordered):
        return ordered
    positions = torch.linspace(0, len(ordered) - 1, num_buckets).round().long().tolist()
    return [ordered[p] for p in positions]


def global_norm(gradients: Sequence[Tensor]) -> float:
    """√(Σ ‖g‖²) over all gradients; FSDP2's DTensor shards are reduced over their mesh (collective)."""
    if not gradients:
        return 0.0
    norm = torch.nn.utils.get_total_norm(list(gradients))
    return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)


class NoiseLevelGradients(L.Callback):
    """Per-noise-level loss and gradient norm of a fixed probe batch.

    Args:
        every_n_batches: measure after every this many training batches (and once at the start).
        num_buckets: B, the grid indices probed, spread over the module's training indices.
        probe_size: samples per index.
        seed: picks the probe's trajectories (independent of the training stream).
        log_figure: also log a figure of both curves over σ (TensorBoard loggers).
    """

    def __init__(
        self,
        every_n_batches: int = 50,
        num_buckets: int = 8,
        probe_size: int = 8,
        seed: int = 1234,
        log_figure: bool = True,
    ) -> None:
        if every_n_batches < 1 or num_buckets < 1 or probe_size < 1:
            raise UserError("every_n_batches, num_buckets and probe_size must all be at least 1.")
        self.every_n_batches, self.num_buckets, self.probe_size = every_n_batches, num_buckets, probe_size
        self.seed, self.log_figure = seed, log_figure
        self.buckets: list[int] = []
        self.history: list[dict] = []  # every measurement: step, and per index σ, loss, grad norm

    # ---- hooks -------------------------------------------------------------------------------

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        probe = getattr(trainer.datamodule, "probe_batch", None)
        if probe is None:
            raise UserError("NoiseLevelGradients needs a data module with probe_batch (TrajectoryDataModule).")
        self.buckets = bucket_indices(pl_module.training_indices(), self.num_buckets)
        self._probes = {
            n: trainer.strategy.batch_to_device(probe(pl_module, n, self.probe_size, self.seed)) for n in self.buckets
        }
        self._measure_and_log(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        batches = trainer.global_step // getattr(pl_module, "optimizer_steps_per_batch", 1)
        if batches % self.every_n_batches == 0:
            self._measure_and_log(trainer, pl_module)

    # ---- the measurement -----------------------------------------------------------------------

    def measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[int, dict[str, float]]:
        """{grid index: {"sigma", "loss", "grad_norm"}} of the probe, the run left as it was."""
        parameters = list(pl_module.trainable_parameters())
        held = [p.grad for p in parameters]
        device = pl_module.device
        model = trainer.strategy.model
        no_sync = model.no_sync() if isinstance(model, torch.nn.parallel.DistributedDataParallel) else nullcontext()
        results = {}
        try:
            for p in parameters:
                p.grad = None
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), no_sync:
                for n in self.buckets:
                    with torch.enable_grad(), trainer.precision_plugin.forward_context():
                        loss = pl_module.consistency_losses(self._probes[n])["loss"]
                    loss.backward()
                    grad_norm = global_norm([p.grad for p in parameters if p.grad is not None])
                    for p in parameters:
                        p.grad = None
                    sigma = float(pl_module.sigma(torch.tensor(n)))
                    results[n] = {"sigma": sigma, "loss": float(loss.detach()), "grad_norm": grad_norm}
        finally:
            for p, grad in zip(parameters, held, strict=True):
                p.grad = grad
        return results

    def _measure_and_log(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        results = self.measure(trainer, pl_module)
        step = trainer.global_step
        self.history.append({"step": step, "buckets": results})
        metrics = {}
        for n, values in results.items():
            metrics[f"noise_level/loss_n{n:02d}"] = values["loss"]
            metrics[f"noise_level/grad_norm_n{n:02d}"] = values["grad_norm"]
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
            if self.log_figure and hasattr(getattr(logger, "experiment", None), "add_figure"):
                logger.experiment.add_figure("noise_level/curves", curves_figure(results, step), global_step=step)


def curves_figure(results: dict[int, dict[str, float]], step: int):
    """Loss and gradient norm against σ (log scales), one figure, grid indices annotated."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    indices = sorted(results, key=lambda n: results[n]["sigma"])
    sigmas = [results[n]["sigma"] for n in indices]
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    for axis, key, label in ((axes[0], "loss", "consistency loss"), (axes[1], "grad_norm", "gradient norm")):
        values = [results[n][key] for n in indices]
        axis.plot(sigmas, values, marker="o")
        for n, s, v in zip(indices, sigmas, values, strict=True):
            axis.annotate(str(n), (s, v), textcoords="offset points", xytext=(0, 5), fontsize=7, ha="center")
        axis.set_xlabel("σ (grid index annotated)")
        axis.set_ylabel(label)
        if min(values) > 0:
            axis.set_yscale("log")
        axis.grid(alpha=0.3)
    figure.suptitle(f"per-noise-level probe at step {step}")
    return figure
