"""Context parallelism for CogVideoX (diffusers has no ``_cp_plan`` for it): the plan, and an attention
processor whose joint attention over [text tokens, video tokens] runs split.

The video tokens are split over the group before the first block and gathered after ``proj_out``
(``norm_final`` and ``norm_out`` act per token); the text stream stays whole on every rank, as do
CogVideoX-5b's rotary embeddings until the transformer's call splits them with the tokens. In each
joint attention the video part goes through Ulysses' all-to-all and the text part keeps this rank's
heads (``joint_ulysses_attention``). Ulysses only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput
from diffusers.models.attention_processor import CogVideoXAttnProcessor2_0
from torch import Tensor

from dcm_lightning.context_parallel import (
    ContextGroup,
    attention_heads,
    joint_ulysses_attention,
    rotate_video_tokens,
    ulysses_only,
)
from dcm_lightning.errors import UserError

COGVIDEOX_CP_PLAN = {
    "": {  # CogVideoX-5b's rotary embeddings (cos, sin: n d), given to the transformer by the caller
        "image_rotary_emb": [ContextParallelInput(split_dim=0, expected_dims=2)] * 2,
    },
    "transformer_blocks.0": {"hidden_states": ContextParallelInput(split_dim=1, expected_dims=3)},
    "proj_out": ContextParallelOutput(gather_dim=1, expected_dims=3),
}


class CogVideoXContextParallelProcessor(CogVideoXAttnProcessor2_0):
    """``CogVideoXAttnProcessor2_0`` with its attention split over ``group``: the same projections,
    norms, rotary embedding and output projection; the attention by ``joint_ulysses_attention`` over
    [this rank's video tokens, all text tokens] (the diffusers processor orders them text first; the
    order within one softmax changes only rounding)."""

    def __init__(self, group: ContextGroup) -> None:
        super().__init__()
        self.group = ulysses_only(group, "CogVideoX")

    def __call__(
        self, attn, hidden_states: Tensor, encoder_hidden_states: Tensor, attention_mask=None, image_rotary_emb=None
    ):
        if attention_mask is not None:
            raise UserError("CogVideoX's split attention takes no attention mask (the transformer passes none).")
        text_tokens, video_tokens = encoder_hidden_states.shape[1], hidden_states.shape[1]
        tokens = torch.cat([hidden_states, encoder_hidden_states], dim=1)
        query, key, value = (attention_heads(attn, layer, tokens) for layer in (attn.to_q, attn.to_k, attn.to_v))
        if attn.norm_q is not None:  # a LayerNorm over the head dimension: any layout
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        if image_rotary_emb is not None:  # on the video tokens only
            query = rotate_video_tokens(query, video_tokens, image_rotary_emb)
            if not attn.is_cross_attention:
                key = rotate_video_tokens(key, video_tokens, image_rotary_emb)

        def attend(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
            out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
            return out.transpose(1, 2)

        out = joint_ulysses_attention(attend, query, key, value, text_tokens, self.group).flatten(2, 3)
        out = attn.to_out[1](attn.to_out[0](out))
        return out[:, :video_tokens], out[:, video_tokens:]
