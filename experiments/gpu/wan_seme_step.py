"""GPU figures for issue 6: a SemE step and the sampling latency of a Wan2.1-1.3B-architecture student.

    python -m experiments.gpu.wan_seme_step --out experiments/gpu/wan_1.3b.json      (on a GPU)
    python -m experiments.gpu.wan_seme_step --tiny                                    (CPU smoke run)

Random initialization (no weights are downloaded): the numbers are speed and memory, not quality.
The student is diffusers' WanTransformer3DModel with Wan2.1-T2V-1.3B's config behind this package's
WanTeacher adapter; fp32 master weights with bf16 autocast (Lightning's "bf16-mixed"), activation
checkpointing per block, AdamW. One SemE step is what SemEModule does on a cached pair: the student's
jump x_n → σ_e with gradient, the online target's jump x_{n−1} → σ_e without, pseudo-Huber + temporal
coherence, backward, clip, step. MFU counts the model FLOPs of the step (3× the student forward for
forward + backward, 1× for the target; activation recomputation not counted) over the chip's dense
bf16 peak. Latency: the guided teacher at 50 steps (CFG: 2 samples per step, one batched call) and
the student at 4 steps, one video each, after a warm-up call.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from dcm_lightning.conditioning import TextCondition
from dcm_lightning.diffusion import teacher_sigmas
from dcm_lightning.losses import consistency_loss
from dcm_lightning.sampling import denoiser, sample
from dcm_lightning.teachers.diffusers_base import latent_video_shape
from dcm_lightning.teachers.wan import WAN21_T2V_1_3B, WanNetwork, WanTeacher

TINY = dict(
    WAN21_T2V_1_3B, num_attention_heads=2, attention_head_dim=16, text_dim=32, freq_dim=32, ffn_dim=64, num_layers=2
)
# (frames, height, width) of the video; latents are 16 × ((f − 1)/4 + 1) × h/8 × w/8.
SHAPES = [(81, 480, 832), (49, 480, 832), (33, 480, 832)]
PEAK_BF16 = {"H100": 989.4e12, "H200": 989.4e12}  # dense bf16 tensor-core peak, SXM


def latent_shape(frames: int, height: int, width: int) -> tuple[int, int, int, int]:
    return latent_video_shape(WAN21_T2V_1_3B["in_channels"], frames, height, width)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(config: dict, shape: tuple, text_len: int, device: torch.device) -> tuple[WanTeacher, TextCondition]:
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    with torch.device(device):  # initialize on the device: a 1.3 B model inits slowly on the CPU
        transformer = WanTransformer3DModel(**config)
    text = TextCondition(
        torch.randn(1, text_len, config["text_dim"], device=device),
        torch.ones(1, text_len, dtype=torch.bool, device=device),
    )
    negative = TextCondition(torch.zeros_like(text.embeds), text.mask.clone())
    return WanTeacher(WanNetwork(transformer), negative, shape), text


def seme_step(student: WanTeacher, optimizer, x_n, x_prev, sigma_n, sigma_prev, sigma_end, text, device) -> float:
    """One SemE step on a cached pair (the library's consistency loss, online target); returns its loss."""
    denoise = denoiser(student, text, guidance_scale=1.0)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        terms = consistency_loss(
            denoise, denoise, student.parameterization, x_n, x_prev, sigma_n, sigma_prev, sigma_end, 1e-3, 3, 1.0
        ).terms
        loss = terms["loss"]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(student.network.parameters(), 1.0)
    optimizer.step()
    return float(loss)


def forward_flops(student: WanTeacher, x, sigma, text) -> int:
    with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.bfloat16), FlopCounterMode(display=False) as count:
        student.predict(x, sigma, text, guidance_scale=1.0)
    return count.get_total_flops()


def measure(config: dict, shape: tuple, text_len: int, device: torch.device, steps: int, warmup: int) -> dict:
    teacher, text = build(config, latent_shape(*shape), text_len, device)
    student = teacher.student_copy()
    student.network.transformer.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW(student.network.parameters(), lr=1e-6, betas=(0.9, 0.999), weight_decay=1e-3)
    generator = torch.Generator(device="cpu").manual_seed(0)
    latent = latent_shape(*shape)
    x_n = torch.randn(1, *latent, generator=generator).to(device)
    x_prev = (x_n + 0.01 * torch.randn(1, *latent, generator=generator).to(device)).contiguous()
    sigma_n, sigma_prev, sigma_end = (torch.tensor([s], device=device) for s in (0.99, 0.985, 0.98))

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(warmup):
        seme_step(student, optimizer, x_n, x_prev, sigma_n, sigma_prev, sigma_end, text, device)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        loss = seme_step(student, optimizer, x_n, x_prev, sigma_n, sigma_prev, sigma_end, text, device)
    synchronize(device)
    step_seconds = (time.perf_counter() - start) / steps
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    flops = forward_flops(student, x_n, sigma_n, text)
    model_flops = 4 * flops  # student forward + backward (3×) and the target's forward (1×)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak_flops = next((v for k, v in PEAK_BF16.items() if k in name), None)
    result = {
        "device": name,
        "video_shape": {"frames": shape[0], "height": shape[1], "width": shape[2]},
        "latent_shape": list(latent),
        "tokens": latent[1] * (latent[2] // 2) * (latent[3] // 2),
        "parameters": sum(p.numel() for p in student.network.parameters()),
        "seme_step_seconds": round(step_seconds, 4),
        "peak_memory_gib": None if peak is None else round(peak / 2**30, 2),
        "forward_tflops": round(flops / 1e12, 2),
        "mfu": None if peak_flops is None else round(model_flops / step_seconds / peak_flops, 4),
        "final_loss": loss,
    }
    del optimizer
    result.update(sampling_latency(teacher, student, text, device))
    return result


def sampling_latency(teacher: WanTeacher, student: WanTeacher, text: TextCondition, device: torch.device) -> dict:
    """One video each, bf16 weights: the guided teacher at 50 steps, the student at 4 (after a
    one-step warm-up of each)."""
    student.network.transformer.disable_gradient_checkpointing()
    teacher.network.to(torch.bfloat16)
    student.network.to(torch.bfloat16)
    noise = torch.randn(1, *teacher.latent_shape(), generator=torch.Generator().manual_seed(1)).to(
        device, torch.bfloat16
    )
    text = TextCondition(text.embeds.to(torch.bfloat16), text.mask)
    timings = {}
    for label, model, steps, scale in (
        ("teacher_50", teacher, 50, teacher.guidance_scale),
        ("student_4", student, 4, 1.0),
    ):
        sigmas = teacher_sigmas(steps, teacher.shift)
        with torch.no_grad():
            sample(denoiser(model, text, scale), model.parameterization, noise, sigmas[-2:])  # warm-up: one step
            synchronize(device)
            start = time.perf_counter()
            sample(denoiser(model, text, scale), model.parameterization, noise, sigmas)
            synchronize(device)
        timings[label] = time.perf_counter() - start
    return {
        "teacher_50_seconds": round(timings["teacher_50"], 3),
        "student_4_seconds": round(timings["student_4"], 3),
        "latency_ratio": round(timings["teacher_50"] / timings["student_4"], 2),
        "nfe_bound": 100 / 4,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a 2-layer config at 17 frames of 64×64 (CPU smoke run)")
    parser.add_argument("--steps", type=int, default=5, help="timed SemE steps (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed SemE steps first (default 2)")
    parser.add_argument("--out", default=None, help="JSON file for the figures")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.tiny:
        results = [measure(TINY, (17, 64, 64), 8, device, args.steps, args.warmup)]
    else:
        results = []
        for shape in SHAPES:
            try:
                results.append(measure(WAN21_T2V_1_3B, shape, 512, device, args.steps, args.warmup))
                break
            except torch.cuda.OutOfMemoryError:
                results.append({"video_shape": shape, "error": "out of memory"})
                torch.cuda.empty_cache()
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
