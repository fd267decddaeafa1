"""Context parallelism: each sample's video tokens split over the ranks of a context-parallel group
(docs/design.md §3 "Scale"). The mesh comes from ``strategies.ContextParallelStrategy``; this file
holds what a network needs to run split, and nothing about training.

Why a split step equals the unsplit one:
- every rank of a group holds the same sample and draws the same noise (the data module and the step
  generators go by the data-parallel rank: ``data_parallel_rank``);
- a network's tokens are split where its plan says (``split``: this rank's chunk; its backward pads
  the other chunks with zeros) and its output is gathered whole on every rank (``gather``: its
  backward keeps this rank's chunk of the gradient);
- attention sees the whole sequence by Ulysses' all-to-all (every rank's tokens for 1/k of the
  heads; diffusers' attention dispatch, or ``joint_ulysses_attention`` where text tokens join);
- so every loss is computed whole and identically on each rank of a group, and each rank's gradient
  of a split network is its tokens' share: the shares are summed over the group (FSDP2 divides the
  reduce-scattered sum by the data-parallel size only: ``sum_gradients_over_context``); a network
  that runs whole on every rank (the discriminator heads) averages over all ranks as usual.

A plan is diffusers' ``_cp_plan`` format ({submodule: {input name or output index:
ContextParallelInput} or ContextParallelOutput}); it is applied with plain torch module hooks, which
shallow copies of a module share (the detail expert's Ψ view, experts.py, is one).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import torch
import torch.distributed as dist
from torch import Tensor, nn

from dcm_lightning.errors import UserError


class ContextGroup:
    """The ranks one sample's tokens are split over: the ``ring`` × ``ulysses`` sub-mesh of the
    strategy's mesh, its process group, and this rank's place in it."""

    def __init__(self, mesh) -> None:
        self.mesh = mesh  # 2-D: ("ring", "ulysses")
        flat = mesh._flatten()
        self.group = flat.get_group()
        self.size = flat.size()
        self.rank = dist.get_rank(self.group)
        self.ring, self.ulysses = mesh["ring"].size(), mesh["ulysses"].size()


def context_group(device_mesh) -> ContextGroup | None:
    """The context-parallel group of ``ContextParallelStrategy``'s mesh; None without one (or of size 1)."""
    if device_mesh is None or "ulysses" not in (device_mesh.mesh_dim_names or ()):
        return None
    mesh = device_mesh["ring", "ulysses"]
    return ContextGroup(mesh) if mesh.size() > 1 else None


# ---- split and gather ----------------------------------------------------------------------------


def split(x: Tensor, dim: int, group: ContextGroup) -> Tensor:
    """This rank's chunk of ``x`` along ``dim`` (the chunks are equal; the size must divide)."""
    if x.shape[dim] % group.size:
        raise UserError(
            f"{x.shape[dim]} tokens do not split over {group.size} context-parallel ranks; choose a video size "
            f"whose token count divides, or fewer ranks."
        )
    return x.chunk(group.size, dim)[group.rank]


class _Gather(torch.autograd.Function):
    """All chunks concatenated along ``dim``. Backward: this rank's chunk of the gradient — summed over
    the group first when every rank consumed the whole (``sum_gradient``: a replicated consumer
    downstream of per-rank work), else taken as is (the loss is computed whole on every rank)."""

    @staticmethod
    def forward(ctx, x: Tensor, dim: int, group: ContextGroup, sum_gradient: bool) -> Tensor:
        ctx.dim, ctx.context, ctx.sum_gradient = dim, group, sum_gradient
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(group.size)]
        dist.all_gather(parts, x, group=group.group)
        return torch.cat(parts, dim)

    @staticmethod
    def backward(ctx, grad: Tensor):
        group = ctx.context
        if ctx.sum_gradient:
            grad = grad.contiguous().clone()
            dist.all_reduce(grad, group=group.group)
        return grad.chunk(group.size, ctx.dim)[group.rank].contiguous(), None, None, None


def gather(x: Tensor, dim: int, group: ContextGroup, sum_gradient: bool = False) -> Tensor:
    """The whole of a split tensor on every rank (see ``_Gather``)."""
    return _Gather.apply(x, dim, group, sum_gradient)


class _AllToAll(torch.autograd.Function):
    """x: (k, …) → (k, …): chunk j goes to rank j, chunk i of the result came from rank i."""

    @staticmethod
    def forward(ctx, x: Tensor, group: ContextGroup) -> Tensor:
        ctx.context = group
        x = x.contiguous()
        out = torch.empty_like(x)  # (of a permuted x it would keep the permuted strides)
        dist.all_to_all_single(out, x, group=group.group)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        return _AllToAll.apply(grad, ctx.context), None


def tokens_to_heads(x: Tensor, group: ContextGroup) -> Tensor:
    """Ulysses: b n H d (this rank's n tokens, all heads) → b (k·n) H/k d (all tokens, its heads)."""
    b, n, h, d = x.shape
    k = group.size
    x = x.reshape(b, n, k, h // k, d).permute(2, 0, 1, 3, 4)  # k b n H/k d: head group j → rank j
    x = _AllToAll.apply(x, group)  # k b n H/k d: the tokens of rank i, my heads
    return x.permute(1, 0, 2, 3, 4).reshape(b, k * n, h // k, d)


def heads_to_tokens(x: Tensor, group: ContextGroup) -> Tensor:
    """The inverse of ``tokens_to_heads``: b (k·n) H/k d → b n H d."""
    b, kn, hk, d = x.shape
    k = group.size
    x = x.reshape(b, k, kn // k, hk, d).permute(1, 0, 2, 3, 4)  # k b n H/k d: tokens of rank j → rank j
    x = _AllToAll.apply(x, group)  # k b n H/k d: my tokens, the heads of rank i
    return x.permute(1, 2, 0, 3, 4).reshape(b, kn // k, k * hk, d)


def joint_ulysses_attention(
    attend, query: Tensor, key: Tensor, value: Tensor, text_tokens: int, group: ContextGroup
) -> Tensor:
    """Attention over [video tokens split over the group, text tokens whole on every rank] (b n+T H d
    each; HunyuanVideo's and CogVideoX's joint attention): the video part goes through Ulysses'
    all-to-all, the text part keeps this rank's heads, ``attend(q, k, v)`` (b N H/k d) runs on [all
    video, text], and the result returns as [this rank's video tokens, all text tokens], every head."""
    k = group.size
    if query.shape[2] % k:
        raise UserError(f"{query.shape[2]} attention heads do not split over {k} Ulysses ranks.")
    heads = slice(group.rank * query.shape[2] // k, (group.rank + 1) * query.shape[2] // k)
    n = query.shape[1] - text_tokens

    def rearrange(x: Tensor) -> Tensor:
        return torch.cat([tokens_to_heads(x[:, :n], group), x[:, n:, heads]], dim=1)

    out = attend(rearrange(query), rearrange(key), rearrange(value))  # b (k·n + T) H/k d
    video = heads_to_tokens(out[:, : k * n], group)
    # Each rank's text output feeds its replica of the text stream: their gradients add up.
    text = gather(out[:, k * n :], 2, group, sum_gradient=True)
    return torch.cat([video, text], dim=1)


def ulysses_only(group: ContextGroup, family: str) -> ContextGroup:
    """``group``, refused when it has ring ranks: a joint attention over [video, text] is Ulysses only."""
    if group.ring > 1:
        raise UserError(f"{family}'s context parallelism is Ulysses only; set ring: 1 in the strategy.")
    return group


def attention_heads(attn: nn.Module, projection: nn.Module, tokens: Tensor) -> Tensor:
    """b n (H d) → b n H d through one of ``attn``'s projections (the layout the joint attention takes)."""
    return projection(tokens).unflatten(2, (attn.heads, -1))


def rotate_video_tokens(x: Tensor, video_tokens: int, rotary) -> Tensor:
    """Rotary embedding on the first ``video_tokens`` tokens of x (b n H d); the text tokens after them as
    they are."""
    from diffusers.models.embeddings import apply_rotary_emb

    return torch.cat([apply_rotary_emb(x[:, :video_tokens], rotary, sequence_dim=1), x[:, video_tokens:]], dim=1)


# ---- plans --------------------------------------------------------------------------------------


def _split_hook(inputs: Mapping, signature: inspect.Signature, group: ContextGroup):
    names = list(signature.parameters)

    def hook(_module: nn.Module, args: tuple, kwargs: dict):
        args = list(args)
        for name, spec in inputs.items():
            if name in kwargs:
                kwargs[name] = _split_value(kwargs[name], spec, group)
            elif name in names and names.index(name) < len(args):
                args[names.index(name)] = _split_value(args[names.index(name)], spec, group)
        return tuple(args), kwargs

    return hook


def _split_value(value, spec, group: ContextGroup):
    if isinstance(value, (list, tuple)):
        return type(value)(_split_value(v, s, group) for v, s in zip(value, spec, strict=True))
    if not isinstance(value, Tensor) or (spec.expected_dims is not None and value.dim() != spec.expected_dims):
        return value  # as diffusers: a tensor of another rank is not split (e.g. Wan's 1-D timestep)
    return split(value, spec.split_dim, group)


def _split_output_hook(outputs: Mapping, group: ContextGroup):
    def hook(_module: nn.Module, _args: tuple, output):
        single = isinstance(output, Tensor)
        values = [output] if single else list(output)
        for index, spec in outputs.items():
            values[index] = _split_value(values[index], spec, group)
        return values[0] if single else type(output)(values)

    return hook


def _gather_hook(specs: list, group: ContextGroup):
    def hook(_module: nn.Module, _args: tuple, output):
        single = isinstance(output, Tensor)
        values = [output] if single else list(output)
        for index, spec in enumerate(specs):
            if spec is not None:
                values[index] = gather(values[index], spec.gather_dim, group)
        return values[0] if single else type(output)(values)

    return hook


def apply_plan(root: nn.Module, plan: Mapping, group: ContextGroup) -> None:
    """Register ``plan``'s splits and gathers on ``root``'s submodules (diffusers' ``_cp_plan`` format)."""
    from diffusers.models._modeling_parallel import ContextParallelOutput

    for path, entry in plan.items():
        module = root.get_submodule(path) if path else root
        if isinstance(entry, (ContextParallelOutput, list, tuple)):
            specs = [entry] if isinstance(entry, ContextParallelOutput) else list(entry)
            module.register_forward_hook(_gather_hook(specs, group))
            continue
        inputs = {name: spec for name, spec in entry.items() if isinstance(name, str)}
        outputs = {index: spec for index, spec in entry.items() if isinstance(index, int)}
        if inputs:
            signature = inspect.signature(module.forward)
            module.register_forward_pre_hook(_split_hook(inputs, signature, group), with_kwargs=True)
        if outputs:
            module.register_forward_hook(_split_output_hook(outputs, group))


def plan_under(plan: Mapping, prefix: str) -> dict:
    """The entries of ``plan`` for the module at ``prefix`` and below, with paths relative to it."""
    return {
        path.removeprefix(prefix).removeprefix("."): entry
        for path, entry in plan.items()
        if path == prefix or path.startswith(prefix + ".")
    }


def diffusers_attention_config(group: ContextGroup):
    """The ``ParallelConfig`` diffusers' attention dispatch reads for Ulysses / ring attention, set up
    from the group's mesh (``enable_parallelism`` would build it, but takes the device from an
    accelerator, so cannot run on CPU ranks)."""
    from diffusers.models._modeling_parallel import ContextParallelConfig, ParallelConfig

    config = ParallelConfig(
        context_parallel_config=ContextParallelConfig(
            ring_degree=group.ring, ulysses_degree=group.ulysses, mesh=group.mesh
        )
    )
    cpu = group.mesh.device_type == "cpu"
    device = (
        torch.device("cpu") if cpu else torch.device(group.mesh.device_type, torch.accelerator.current_device_index())
    )
    config.setup(dist.get_rank(), dist.get_world_size(), device, mesh=group.mesh)
    return config


# ---- gradients -----------------------------------------------------------------------------------


def sum_gradients_over_context(network: nn.Module, data_parallel_size: int) -> None:
    """Each FSDP2 unit of a split network divides its reduce-scattered gradient sum by the
    data-parallel size only: the context-parallel ranks' shares add up, the data-parallel ranks'
    gradients are averaged."""
    from torch.distributed.fsdp import FSDPModule

    gloo = dist.get_backend() == "gloo"  # no pre-multiplied sums there: sum, then divide
    for module in network.modules():
        if isinstance(module, FSDPModule):
            module.set_gradient_divide_factor(float(data_parallel_size))
            module.set_force_sum_reduction_for_comms(gloo)
