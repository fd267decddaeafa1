"""Block features of diffusers transformers, read with forward hooks (the discriminator's Ω), and
what their output heads need to project them (the feature matching's "final layer" features)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from torch import Tensor, nn


@contextmanager
def block_outputs(blocks: nn.ModuleList, indices: Sequence[int]) -> Iterator[list[Tensor]]:
    """Collect the output hidden states (``b n d``; the first element of a tuple output) of the blocks
    ``indices`` during one forward pass, in the order of ``indices``. Only the first call of each
    block counts: under activation checkpointing a block's forward runs again during backward."""
    outputs: dict[int, Tensor] = {}
    handles = []
    for index in indices:

        def hook(_module: nn.Module, _args: tuple, output, index: int = index) -> None:
            if index not in outputs:
                outputs[index] = output[0] if isinstance(output, tuple) else output

        handles.append(blocks[index].register_forward_hook(hook))
    collected: list[Tensor] = []
    try:
        yield collected
    finally:
        for handle in handles:
            handle.remove()
    collected.extend(outputs[i] for i in indices)


@contextmanager
def first_call(module: nn.Module) -> Iterator[dict]:
    """The ``args``, ``kwargs`` and ``output`` of ``module``'s first call during one forward pass (what
    an output head needs of it, e.g. the timestep embedding ``temb``); a recomputation under activation
    checkpointing does not overwrite it."""
    call: dict = {}

    def hook(_module: nn.Module, args: tuple, kwargs: dict, output) -> None:
        if not call:
            call.update(args=args, kwargs=kwargs, output=output)

    handle = module.register_forward_hook(hook, with_kwargs=True)
    try:
        yield call
    finally:
        handle.remove()


def pack_network_output(v: Tensor, features: list[Tensor], heads: Callable[[], list[Tensor]] | None):
    """What a network with feature blocks returns: v alone, (v, features), or (v, features, heads)
    (``heads`` computed only when asked); ``unpack_network_output`` reads it back."""
    if not features:
        return v
    return (v, features) if heads is None else (v, features, heads())


def unpack_network_output(out, feature_blocks: Sequence[int]) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """A network call's v, block features and their output-head projections (empty when not asked)."""
    out = (out,) if not feature_blocks else tuple(out)
    return out + ([],) * (3 - len(out))
