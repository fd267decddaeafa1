"""``ContextParallelStrategy``: Lightning's ``ModelParallelStrategy`` (FSDP2) with each sample's tokens
split over a context-parallel group (docs/design.md §3 "Scale"; context_parallel.py).

The mesh is ``("data_parallel", "ring", "ulysses")``: ranks that differ only in their ring and Ulysses
coordinates form one context-parallel group and hold the same sample (Lightning gives every rank the
data-parallel rank as its sampler rank); FSDP2 shards every network over all ranks. In a config:

    trainer:
      strategy:
        class_path: dcm_lightning.strategies.ContextParallelStrategy
        init_args: {ulysses: 8}        # 24 GPUs: 3 data-parallel groups of 8
"""

from __future__ import annotations

from lightning.pytorch.strategies import ModelParallelStrategy, ParallelStrategy

from dcm_lightning.errors import UserError


class ContextParallelStrategy(ModelParallelStrategy):
    """Args:
    ulysses: ranks of a group that exchange tokens for heads by all-to-all (Ulysses); must divide
        the attention heads.
    ring: ranks of a group that pass key/value blocks around (ring attention; needs an attention
        backend that returns the log-sum-exp, i.e. a GPU one, and Wan's self-attention).
    Everything else as ``ModelParallelStrategy`` (distributed checkpoints, process group backend …).
    """

    def __init__(self, ulysses: int = 1, ring: int = 1, **kwargs) -> None:
        if ulysses < 1 or ring < 1:
            raise UserError(f"ulysses and ring must be at least 1, got {ulysses} and {ring}.")
        super().__init__(data_parallel_size="auto", tensor_parallel_size=1, **kwargs)
        self.ulysses, self.ring = ulysses, ring

    @property
    def context_parallel_size(self) -> int:
        return self.ulysses * self.ring

    def setup_environment(self) -> None:
        from torch.distributed.device_mesh import init_device_mesh

        ParallelStrategy.setup_environment(self)
        self._setup_distributed()
        if self.world_size % self.context_parallel_size:
            raise UserError(
                f"{self.world_size} processes do not form groups of ulysses × ring = {self.context_parallel_size}."
            )
        self._data_parallel_size = self.world_size // self.context_parallel_size
        self._device_mesh = init_device_mesh(
            self.root_device.type,
            (self._data_parallel_size, self.ring, self.ulysses),
            mesh_dim_names=("data_parallel", "ring", "ulysses"),
        )
        self.lightning_module._device_mesh = self._device_mesh
