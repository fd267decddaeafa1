"""Block features of diffusers transformers, read with forward hooks (the discriminator's Ω)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
