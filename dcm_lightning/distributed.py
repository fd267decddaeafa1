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


def fsdp_mesh(device_mesh):
    """The 1-D mesh FSDP2 shards over: the data-parallel dimension of ``ModelParallelStrategy``'s mesh,
    or every rank of ``ContextParallelStrategy``'s (strategies.py); None without a mesh."""
    if device_mesh is None:
        return None
    if "tensor_parallel" in device_mesh.mesh_dim_names:
        if device_mesh["tensor_parallel"].size() != 1:
            raise UserError("tensor parallelism is not supported; set tensor_parallel_size: 1 in the strategy.")
        return device_mesh["data_parallel"]
    return device_mesh[device_mesh.mesh_dim_names]._flatten()


def data_parallel_size(device_mesh) -> int:
    """How many data-parallel groups (each holding its own samples) the mesh has; 1 without one."""
    return 1 if device_mesh is None else device_mesh["data_parallel"].size()


def data_parallel_rank(trainer) -> tuple[int, int]:
    """(rank, size) of this process among the data-parallel groups: the ranks of one context-parallel
    group share a rank (they hold the same sample and draw the same noise). Without a mesh, the
    global rank and world size."""
    strategy = trainer.strategy
    kwargs = getattr(strategy, "distributed_sampler_kwargs", None)
    if kwargs is None:
        return strategy.global_rank, strategy.world_size
    return kwargs["rank"], kwargs["num_replicas"]


def shard_network(network: nn.Module, mesh) -> None:
    """``fully_shard`` each of ``network.blocks`` (if it has any), then ``network`` itself."""
    from torch.distributed.fsdp import fully_shard

    for block in getattr(network, "blocks", ()):
        fully_shard(block, mesh=mesh)
    fully_shard(network, mesh=mesh)


def is_sharded_checkpoint(path: str | Path) -> bool:
    """A distributed (DCP) checkpoint folder, as ``ModelParallelStrategy`` writes them."""
    return Path(path).is_dir() and (Path(path) / ".metadata").is_file()
