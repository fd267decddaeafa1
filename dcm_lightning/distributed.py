"""FSDP2 for the distillation modules (docs/design.md §3 "Scale").

Under Lightning's ``ModelParallelStrategy`` a module's ``configure_model`` calls ``shard_network``
on every network it holds: each transformer block becomes one ``fully_shard`` unit, then the rest of
the network (embedders, output layers, Ψ copies) one more. ``ModelParallelStrategy`` wraps nothing
in DDP, so every module with parameters must be sharded this way, trainable or not, or its
gradients would never be averaged across ranks.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from dcm_lightning.errors import UserError


def data_parallel_mesh(device_mesh):
    """The 1-D data-parallel sub-mesh of ``ModelParallelStrategy``'s mesh; None without one."""
    if device_mesh is None:
        return None
    if device_mesh["tensor_parallel"].size() != 1:
        raise UserError("tensor parallelism is not supported; set tensor_parallel_size: 1 in the strategy.")
    return device_mesh["data_parallel"]


def shard_network(network: nn.Module, mesh) -> None:
    """``fully_shard`` each of ``network.blocks`` (if it has any), then ``network`` itself."""
    from torch.distributed.fsdp import fully_shard

    for block in getattr(network, "blocks", ()):
        fully_shard(block, mesh=mesh)
    fully_shard(network, mesh=mesh)


def is_sharded_checkpoint(path: str | Path) -> bool:
    """A distributed (DCP) checkpoint folder, as ``ModelParallelStrategy`` writes them."""
    return Path(path).is_dir() and (Path(path) / ".metadata").is_file()
