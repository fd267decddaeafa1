"""Context parallelism for HunyuanVideo (diffusers has no ``_cp_plan`` for it): the plan, and an
attention processor whose joint attention over [video tokens, text tokens] runs split.

The video tokens are split over the group before the first block and gathered after ``proj_out``;
the text stream stays whole on every rank. In each joint attention the video part goes through
Ulysses' all-to-all and the text part keeps this rank's heads (``joint_ulysses_attention``), so the
attention mask the transformer built for [all video, text] stays valid. Ulysses only: ring attention
would need the log-sum-exp of an attention backend that returns it.
"""

from __future__ import annotations

import torch
from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.transformers.transformer_hunyuan_video import HunyuanVideoAttnProcessor2_0
from torch import Tensor

from dcm_lightning.context_parallel import (
    ContextGroup,
    attention_heads,
    joint_ulysses_attention,
    rotate_video_tokens,
    ulysses_only,
)

HUNYUAN_CP_PLAN = {
    "transformer_blocks.0": {"hidden_states": ContextParallelInput(split_dim=1, expected_dims=3)},
    "rope": {
        0: ContextParallelInput(split_dim=0, expected_dims=2, split_output=True),  # cos: (n, d)
        1: ContextParallelInput(split_dim=0, expected_dims=2, split_output=True),  # sin
    },
    "proj_out": ContextParallelOutput(gather_dim=1, expected_dims=3),
}


class HunyuanVideoContextParallelProcessor(HunyuanVideoAttnProcessor2_0):
    """``HunyuanVideoAttnProcessor2_0`` with its attention split over ``group`` (steps 1–4 and 6 are
    the diffusers processor's; step 5 is ``joint_ulysses_attention``)."""

    def __init__(self, group: ContextGroup) -> None:
        super().__init__()
        self.group = ulysses_only(group, "HunyuanVideo")

    def __call__(
        self, attn, hidden_states: Tensor, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None
    ):
        text_tokens = 0 if encoder_hidden_states is None else encoder_hidden_states.shape[1]
        single_stream = attn.add_q_proj is None and encoder_hidden_states is not None
        if single_stream:
            hidden_states = torch.cat([hidden_states, encoder_hidden_states], dim=1)
        query, key, value = (attention_heads(attn, layer, hidden_states) for layer in (attn.to_q, attn.to_k, attn.to_v))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        if image_rotary_emb is not None:  # on the video tokens only
            video_tokens = query.shape[1] - (text_tokens if single_stream else 0)
            query = rotate_video_tokens(query, video_tokens, image_rotary_emb)
            key = rotate_video_tokens(key, video_tokens, image_rotary_emb)
        if attn.add_q_proj is not None and encoder_hidden_states is not None:  # dual-stream blocks
            layers = (attn.add_q_proj, attn.add_k_proj, attn.add_v_proj)
            text_q, text_k, text_v = (attention_heads(attn, layer, encoder_hidden_states) for layer in layers)
            if attn.norm_added_q is not None:
                text_q = attn.norm_added_q(text_q)
            if attn.norm_added_k is not None:
                text_k = attn.norm_added_k(text_k)
            query, key, value = (torch.cat(pair, dim=1) for pair in ((query, text_q), (key, text_k), (value, text_v)))

        def attend(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
            return dispatch_attention_fn(
                q, k, v, attn_mask=attention_mask, dropout_p=0.0, is_causal=False, backend=self._attention_backend
            )

        hidden_states = joint_ulysses_attention(attend, query, key, value, text_tokens, self.group)
        hidden_states = hidden_states.flatten(2, 3).to(query.dtype)
        if encoder_hidden_states is None:  # as the diffusers processor: no output projection then
            return hidden_states, encoder_hidden_states
        hidden_states, encoder_hidden_states = hidden_states[:, :-text_tokens], hidden_states[:, -text_tokens:]
        if getattr(attn, "to_out", None) is not None:
            hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if getattr(attn, "to_add_out", None) is not None:
            encoder_hidden_states = attn.to_add_out(encoder_hidden_states)
        return hidden_states, encoder_hidden_states
