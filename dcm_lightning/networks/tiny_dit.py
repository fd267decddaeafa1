"""TinyVideoDiT: a DiT with adaLN-Zero, absolute and 3D rotary positions over spatio-temporal patches, sized for a CPU.

Layer names follow diffusers (``attn.to_q``, ``attn.to_out.0``, ``time_embedder``, ``proj_out``) so
the detail expert's LoRA targets and Ψ lists read the same for the tiny and the real teachers.
Each ``TinyDiTBlock`` is the FSDP2 sharding and activation-checkpointing unit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from dcm_lightning.errors import UserError


@dataclass(frozen=True)
class TinyDiTConfig:
    """Architecture of a TinyVideoDiT; ``TINY_DIT_SIZES`` names the usual ones."""

    in_channels: int = 3
    patch_size: tuple[int, int, int] = (2, 4, 4)  # (pt, ph, pw)
    width: int = 128
    depth: int = 6
    num_heads: int = 4
    mlp_ratio: float = 4.0
    text_dim: int = 64
    frequency_dim: int = 256
    # Channels of the pixel-resolution output head (0: plain linear unpatchify). The last layer maps each
    # token to this many channels per pixel; a 3×3×3 convolution mixes them across patch seams (as in
    # U-ViT's output conv) together with the noisy input scaled per σ (a learned EDM-style c_skip), so
    # pixel-exact noise need not pass through the 4×4 patch tokens. Without it samples stay speckled
    # and edges ragged at the sizes a CPU can train.
    refine_channels: int = 16

    def __post_init__(self) -> None:
        if self.width % self.num_heads:
            raise UserError(f"width {self.width} is not divisible by num_heads {self.num_heads}.")
        if (self.width // self.num_heads) % 2 or self.width % 4 or (self.width - self.width // 4) % 4:
            raise UserError(f"width {self.width} with {self.num_heads} heads does not split into even position bands.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TinyDiTConfig:
        return cls(**{**values, "patch_size": tuple(values["patch_size"])})


INPUT_SKIPS = 2  # σ-scaled copies of the input the output conv sees

TINY_DIT_SIZES: dict[str, dict] = {
    "test": dict(width=32, depth=2, num_heads=2),  # unit tests: milliseconds
    "cpu": dict(width=128, depth=6, num_heads=4),  # the shipped teacher: ~2.0 M parameters
    "S": dict(width=384, depth=12, num_heads=6),  # a GPU size
    "B": dict(width=768, depth=12, num_heads=12),
}


def tiny_dit_config(size: str, **overrides) -> TinyDiTConfig:
    if size not in TINY_DIT_SIZES:
        raise UserError(f"unknown TinyVideoDiT size {size!r}; choose one of {', '.join(TINY_DIT_SIZES)}.")
    return TinyDiTConfig(**{**TINY_DIT_SIZES[size], **overrides})


# --------------------------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------------------------


def sinusoidal_embedding(values: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Transformer sin-cos features of scalars: (n,) → (n, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=values.device) / half)
    angles = values.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


def video_position_embedding(frames: int, height: int, width: int, dim: int, device: torch.device) -> Tensor:
    """Fixed 3D sin-cos positions: a quarter of the channels for time, the rest split for h and w."""
    dim_t = dim // 4
    dim_hw = (dim - dim_t) // 2
    t, h, w = torch.meshgrid(
        torch.arange(frames, device=device),
        torch.arange(height, device=device),
        torch.arange(width, device=device),
        indexing="ij",
    )
    return torch.cat(
        [
            sinusoidal_embedding(t.flatten(), dim_t, 100.0),
            sinusoidal_embedding(h.flatten(), dim_hw, 100.0),
            sinusoidal_embedding(w.flatten(), dim - dim_t - dim_hw, 100.0),
        ],
        dim=-1,
    )  # (f h w) d


def rope_axis_dims(head_dim: int) -> tuple[int, int, int]:
    """Channels of each head rotated by the t, h and w positions (each even; t gets about a quarter)."""
    dim_t = (head_dim // 4) // 2 * 2
    dim_h = (head_dim - dim_t) // 4 * 2
    return dim_t, dim_h, head_dim - dim_t - dim_h


def video_rope(frames: int, height: int, width: int, head_dim: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """3D rotary position embedding (as in HunyuanVideo / Wan): cos, sin of shape (f h w) head_dim."""
    angles = []
    t, h, w = torch.meshgrid(
        torch.arange(frames, device=device),
        torch.arange(height, device=device),
        torch.arange(width, device=device),
        indexing="ij",
    )
    for positions, dim in zip((t, h, w), rope_axis_dims(head_dim), strict=True):
        freqs = 1.0 / (100.0 ** (torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim))
        angles.append(positions.flatten().float()[:, None] * freqs[None])  # n dim/2
    angles = torch.cat(angles, dim=-1).repeat_interleave(2, dim=-1)  # n head_dim
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, rope: tuple[Tensor, Tensor]) -> Tensor:
    """Rotate channel pairs (2i, 2i+1) of x: b heads n d."""
    cos, sin = rope
    pairs = rearrange(x, "... (d two) -> ... d two", two=2)
    rotated = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


class MLPEmbedder(nn.Module):
    def __init__(self, in_dim: int, width: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, width)
        self.linear_2 = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


# --------------------------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------------------------


class Attention(nn.Module):
    def __init__(self, width: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.to_q = nn.Linear(width, width)
        self.to_k = nn.Linear(width, width)
        self.to_v = nn.Linear(width, width)
        self.to_out = nn.ModuleList([nn.Linear(width, width), nn.Dropout(0.0)])

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor], key_mask: Tensor) -> Tensor:
        """x: b n d; key_mask: b n (False = not attended to)."""
        q, k, v = (rearrange(p(x), "b n (h d) -> b h n d", h=self.num_heads) for p in (self.to_q, self.to_k, self.to_v))
        q, k = apply_rope(q, rope), apply_rope(k, rope)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :])
        out = rearrange(out, "b h n d -> b n (h d)")
        for layer in self.to_out:
            out = layer(out)
        return out


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class TinyDiTBlock(nn.Module):
    """Pre-norm transformer block with adaLN-Zero (DiT, Peebles & Xie 2023)."""

    def __init__(self, width: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(width, num_heads)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.ff = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))
        self.adaln_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))

    def forward(self, x: Tensor, c: Tensor, rope: tuple[Tensor, Tensor], key_mask: Tensor) -> Tensor:
        shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = self.adaln_modulation(c).chunk(6, dim=-1)
        x = x + gate_a[:, None] * self.attn(modulate(self.norm1(x), shift_a, scale_a), rope, key_mask)
        return x + gate_f[:, None] * self.ff(modulate(self.norm2(x), shift_f, scale_f))


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------


class TinyVideoDiT(nn.Module):
    """v-prediction video DiT: ``(x: b c f h w, timestep: b, text: b l d, mask: b l) → b c f h w``.

    The prompt conditions twice, as in HunyuanVideo: its tokens join the attention sequence, and
    their masked mean (pooled text) is added to the timestep embedding that drives adaLN. An empty
    mask is the null prompt of classifier-free guidance.
    """

    def __init__(self, config: TinyDiTConfig) -> None:
        super().__init__()
        self.config = config
        pt, ph, pw = config.patch_size
        patch_dim = config.in_channels * pt * ph * pw
        out_channels = config.refine_channels or config.in_channels
        self.patch_embed = nn.Linear(patch_dim, config.width)
        self.time_embedder = MLPEmbedder(config.frequency_dim, config.width)
        self.pooled_text_embedder = MLPEmbedder(config.text_dim, config.width)
        self.context_embedder = nn.Linear(config.text_dim, config.width)
        self.blocks = nn.ModuleList(
            TinyDiTBlock(config.width, config.num_heads, config.mlp_ratio) for _ in range(config.depth)
        )
        self.norm_out = nn.LayerNorm(config.width, elementwise_affine=False, eps=1e-6)
        self.norm_out_modulation = nn.Sequential(nn.SiLU(), nn.Linear(config.width, 2 * config.width))
        self.proj_out = nn.Linear(config.width, out_channels * pt * ph * pw)
        if config.refine_channels:
            self.input_skip = nn.Linear(config.width, INPUT_SKIPS)  # c → per-σ scales of the input x_σ
            self.refine = nn.Conv3d(
                out_channels + INPUT_SKIPS * config.in_channels, config.in_channels, kernel_size=3, padding=1
            )
        self.gradient_checkpointing = False
        self._init_weights()

    def enable_activation_checkpointing(self) -> None:
        self.gradient_checkpointing = True

    @property
    def feature_dim(self) -> int:
        """Width of the block hidden states the discriminator reads."""
        return self.config.width

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        # adaLN-Zero: every block and the output start as the identity / zero map.
        for block in self.blocks:
            nn.init.zeros_(block.adaln_modulation[-1].weight)
            nn.init.zeros_(block.adaln_modulation[-1].bias)
        for layer in (self.norm_out_modulation[-1], self.proj_out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        if self.config.refine_channels:  # the conv keeps its random weights so the zeroed layers get gradient
            nn.init.zeros_(self.refine.bias)
            nn.init.zeros_(self.input_skip.weight)
            nn.init.zeros_(self.input_skip.bias)

    def check_input_shape(self, shape: Sequence[int]) -> None:
        """Refuse a video the patch size does not tile, before any compute."""
        _, channels, frames, height, width = shape
        pt, ph, pw = self.config.patch_size
        if channels != self.config.in_channels or frames % pt or height % ph or width % pw:
            raise UserError(
                f"a video of shape (c={channels}, f={frames}, h={height}, w={width}) does not fit this "
                f"TinyVideoDiT: it needs c = {self.config.in_channels} and f, h, w divisible by {pt}, {ph}, {pw}."
            )

    def condition(self, timestep: Tensor, text_embeds: Tensor, text_mask: Tensor) -> Tensor:
        """c = time embedding + pooled-text embedding: (b,), (b l d), (b l) → (b width)."""
        weights = text_mask.to(text_embeds.dtype)[..., None]
        pooled = (text_embeds * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
        time = sinusoidal_embedding(timestep, self.config.frequency_dim).to(text_embeds.dtype)
        return self.time_embedder(time) + self.pooled_text_embedder(pooled)

    @property
    def discriminator_blocks(self) -> range:
        """The blocks the discriminator reads every k-th of, counted from the first."""
        return range(len(self.blocks))

    def feature_frames(self, latent_frames: int) -> int:
        """Frames of the token grid (the feature layout ``b (f h w) d``) of a ``latent_frames`` video."""
        return latent_frames // self.config.patch_size[0]

    def forward(
        self,
        x: Tensor,
        timestep: Tensor,
        text_embeds: Tensor,
        text_mask: Tensor,
        feature_blocks: Sequence[int] = (),
        feature_heads: bool = False,
    ) -> Tensor | tuple:
        """Return v (b c f h w); with ``feature_blocks`` also the video tokens' hidden states (b n width)
        after those blocks, in their order, and with ``feature_heads`` as well each of them taken
        through the output head (b c f h w, as if it were the last block's: the official feature
        matching's "final layer" features)."""
        self.check_input_shape(x.shape)
        pt, ph, pw = self.config.patch_size
        _, _, frames, height, width = x.shape
        grid = (frames // pt, height // ph, width // pw)
        tokens = rearrange(x, "b c (f pt) (h ph) (w pw) -> b (f h w) (pt ph pw c)", pt=pt, ph=ph, pw=pw)
        # Absolute positions as well as rotary ones: attention with RoPE alone is translation-invariant,
        # so from pure noise the network could not place "a shape that starts right and moves left".
        video = self.patch_embed(tokens) + video_position_embedding(*grid, self.config.width, x.device).to(x.dtype)
        num_video = video.shape[1]
        # Joint attention (single-stream, as HunyuanVideo's later blocks): the prompt's tokens join the
        # sequence, so each video token can look up the words it needs (e.g. the direction) directly.
        hidden = torch.cat([video, self.context_embedder(text_embeds)], dim=1)  # b (n + l) d
        key_mask = torch.cat([torch.ones_like(text_mask[:, :1]).expand(-1, num_video), text_mask], dim=1)
        cos, sin = video_rope(*grid, self.config.width // self.config.num_heads, x.device)
        text_positions = text_embeds.shape[1]
        rope = (F.pad(cos, (0, 0, 0, text_positions), value=1.0), F.pad(sin, (0, 0, 0, text_positions)))
        c = self.condition(timestep, text_embeds, text_mask)
        features: dict[int, Tensor] = {}
        for index, block in enumerate(self.blocks):
            if self.gradient_checkpointing and torch.is_grad_enabled():
                hidden = torch.utils.checkpoint.checkpoint(block, hidden, c, rope, key_mask, use_reentrant=False)
            else:
                hidden = block(hidden, c, rope, key_mask)
            if index in feature_blocks:
                features[index] = hidden[:, :num_video]
        v = self.output_head(hidden[:, :num_video], c, x)
        if not feature_blocks:
            return v
        hidden_features = [features[i] for i in feature_blocks]
        if not feature_heads:
            return v, hidden_features
        return v, hidden_features, [self.output_head(f, c, x) for f in hidden_features]

    def output_head(self, video_tokens: Tensor, c: Tensor, x: Tensor) -> Tensor:
        """The last block's video tokens (b n width) → v (b c f h w): modulated norm, projection,
        unpatchify and (with ``refine_channels``) the output convolution with the σ-scaled input."""
        pt, ph, pw = self.config.patch_size
        _, _, frames, height, width = x.shape
        shift, scale = self.norm_out_modulation(c).chunk(2, dim=-1)
        out = self.proj_out(modulate(self.norm_out(video_tokens), shift, scale))
        v = rearrange(  # without the output conv this is v; with it, per-pixel features
            out,
            "b (f h w) (pt ph pw c) -> b c (f pt) (h ph) (w pw)",
            f=frames // pt,
            h=height // ph,
            w=width // pw,
            pt=pt,
            ph=ph,
            pw=pw,
        )
        if self.config.refine_channels:
            scales = self.input_skip(c)[:, :, None, None, None, None]  # b k 1 1 1 1
            skip = rearrange(x.unsqueeze(1) * scales, "b k c f h w -> b (k c) f h w")
            v = self.refine(torch.cat([F.silu(v), skip], dim=1))  # b c f h w
        return v
