"""Issue 19 (a): a HunyuanVideo-architecture stack of a few blocks at the real 720p × 129-frame token
count — activation memory and time per block, forward and backward — to put beside the capacity
model (dcm_lightning/analysis/capacity.py), which so far only models them.

    python -m experiments.gpu.hunyuan_blocks --out experiments/gpu/hunyuan_blocks_h100.json   (on a GPU)
    python -m experiments.gpu.hunyuan_blocks --tiny                                            (CPU smoke run)

diffusers' ``HunyuanVideoTransformer3DModel`` with the released width (24 heads × 128) and ``blocks``
dual- and ``blocks`` single-stream blocks (random init); fp32 master weights under bf16 autocast, as
the student trains; the latent of 129 frames at 720 × 1280 (16 × 33 × 90 × 160: 118,800 video tokens)
and 256 text tokens; activation checkpointing per block. Two stacks are measured, ``blocks`` and
2 × ``blocks`` deep: the difference is what each further pair of blocks (one of each kind) adds, so the
embedders, the output head and the one recomputed block cancel out. ``--split k`` divides the video
tokens by k (what one rank of a k-way context-parallel group holds).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

LATENT = (16, 33, 90, 160)  # 720p × 129 frames through the 4× / 8× VAE
TEXT_TOKENS = 256


def stack(layers: int, device: torch.device, tiny: bool):
    from diffusers import HunyuanVideoTransformer3DModel

    width = (
        dict(num_attention_heads=2, attention_head_dim=16, text_embed_dim=32, pooled_projection_dim=16) if tiny else {}
    )
    rope = {"rope_axes_dim": (4, 6, 6)} if tiny else {}
    with torch.device(device):
        model = HunyuanVideoTransformer3DModel(
            num_layers=layers, num_single_layers=layers, num_refiner_layers=1, **width, **rope
        )
    model.enable_gradient_checkpointing()
    return model


def measure(layers: int, latent: tuple, text_tokens: int, device: torch.device, tiny: bool, steps: int) -> dict:
    model = stack(layers, device, tiny)
    config = model.config
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, *latent, generator=generator).to(device)
    text = torch.randn(1, text_tokens, config.text_embed_dim, generator=generator).to(device)
    mask = torch.ones(1, text_tokens, device=device)
    pooled = torch.randn(1, config.pooled_projection_dim, generator=generator).to(device)
    timestep, guidance = torch.tensor([500.0], device=device), torch.tensor([6000.0], device=device)

    def call():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return model(x, timestep, text, mask, pooled, guidance=guidance, return_dict=False)[0]

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    call().float().square().mean().backward()  # warm-up
    model.zero_grad(set_to_none=True)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    forward = backward = 0.0
    for _ in range(steps):
        start = time.perf_counter()
        loss = call().float().square().mean()
        sync()
        middle = time.perf_counter()
        loss.backward()
        sync()
        forward += middle - start
        backward += time.perf_counter() - middle
        model.zero_grad(set_to_none=True)
    gradients = 4 * sum(p.numel() for p in model.parameters())  # fp32, held at the peak (end of backward)
    peak = torch.cuda.max_memory_allocated(device) - base - gradients if device.type == "cuda" else None
    return {
        "blocks_each_kind": layers,
        "forward_seconds": round(forward / steps, 4),
        "backward_seconds": round(backward / steps, 4),
        "parameters": sum(p.numel() for p in model.parameters()),
        "activation_peak_gib": None if peak is None else round(peak / 2**30, 3),  # above weights and gradients
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="2 heads of 16 at a 16 × 5 × 8 × 8 latent (CPU smoke run)")
    parser.add_argument("--blocks", type=int, default=2, help="blocks of each kind in the shallow stack (default 2)")
    parser.add_argument("--split", type=int, default=1, help="divide the video tokens by this (a CP rank's share)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    c, f, h, w = (16, 5, 8, 8) if args.tiny else LATENT
    latent = (c, f, h, w // args.split)  # a rank's share of the tokens as a narrower video: tokens / k
    text_tokens = 8 if args.tiny else TEXT_TOKENS
    shallow = measure(args.blocks, latent, text_tokens, device, args.tiny, args.steps)
    deep = measure(2 * args.blocks, latent, text_tokens, device, args.tiny, args.steps)
    pairs = args.blocks  # the deep stack has this many more pairs (a dual- and a single-stream block)
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "latent": list(latent),
        "video_tokens": latent[1] * (latent[2] // 2) * (latent[3] // 2),
        "text_tokens": text_tokens,
        "stacks": [shallow, deep],
        "per_block_pair": {
            "forward_seconds": round((deep["forward_seconds"] - shallow["forward_seconds"]) / pairs, 4),
            "backward_seconds": round((deep["backward_seconds"] - shallow["backward_seconds"]) / pairs, 4),
            "activation_gib": None
            if shallow["activation_peak_gib"] is None
            else round((deep["activation_peak_gib"] - shallow["activation_peak_gib"]) / pairs, 3),
        },
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
