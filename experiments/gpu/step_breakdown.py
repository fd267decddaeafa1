"""Issue 19, part 3: one SemE and one DetE step at Wan2.1-1.3B size — step time, peak memory, MFU and
the share of each part — with the throughput options on or off, so each is kept only if it pays.

    python -m experiments.gpu.step_breakdown --out experiments/gpu/step_breakdown_h100.json   (on a GPU)
    python -m experiments.gpu.step_breakdown --tiny                                            (CPU smoke run)
    python -m experiments.gpu.step_breakdown --variants baseline fused_adamw compile_blocks flash

Random initialization (no weights): speed and memory, not quality. The networks are diffusers'
``WanTransformer3DModel`` with Wan2.1-T2V-1.3B's config behind this package's adapters; the teacher in
bf16, the student's master weights fp32 with bf16 autocast (Lightning's "bf16-mixed"), activation
checkpointing per block; 480p × 81 frames (32,760 tokens), 512 text tokens, batch 1.

A step is the modules' own, written out part by part (each part timed between synchronizations, so
the parts add up to the step but overlap nothing):
- SemE on a cached pair: data (host → device), target (the online target's jump, no gradient),
  student forward, student backward, optimizer (clip + AdamW);
- DetE (LoRA r 128 + Ψ, official): data, target, student forward (the detail expert's jump), teacher
  forward (the fake's features with gradient, the real's without; feature matching through the
  output head), discriminator (heads, the three losses), backward (generator), optimizer G, then the
  discriminator's backward and optimizer.
MFU: the model FLOPs of a step (the student's forward ×3 for forward + backward, the target's ×1,
for DetE also the teacher's forwards: fake ×3 — its backward reaches the student — and real ×1;
activation recomputation not counted) over the chip's dense bf16 peak.

Variants (``--variants``), each on top of the baseline:
  fused_adamw      AdamW(fused=True)
  compile_blocks   torch.compile on each transformer block
  flash            diffusers' attention backend "_native_flash" (SDPA's flash kernel) instead of "native"
  all              all three
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from dcm_lightning.conditioning import TextCondition
from dcm_lightning.diffusion import renoise
from dcm_lightning.diffusion.consistency import consistency_target, jump
from dcm_lightning.experts import DualExpertNetwork
from dcm_lightning.losses import adversarial_losses, hinge_generator_loss, pseudo_huber, temporal_coherence
from dcm_lightning.networks.discriminator import FeatureDiscriminator, every_kth_block
from dcm_lightning.sampling import denoiser
from dcm_lightning.teachers.base import LORA_TARGETS
from dcm_lightning.teachers.wan import WAN21_T2V_1_3B, WAN_PSI, WanNetwork, WanTeacher
from experiments.gpu.wan_seme_step import PEAK_BF16, TINY, latent_shape

VARIANTS = {
    "baseline": {},
    "fused_adamw": {"fused_adamw": True},
    "compile_blocks": {"compile_blocks": True},
    "flash": {"attention_backend": "_native_flash"},
    "all": {"fused_adamw": True, "compile_blocks": True, "attention_backend": "_native_flash"},
}


class PartTimer:
    """Seconds per named part: each part ends with a device synchronization."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.seconds = device, defaultdict(float)

    def part(self, name: str):
        timer = self

        class _Part:
            def __enter__(self):
                self.start = time.perf_counter()

            def __exit__(self, *exc):
                if timer.device.type == "cuda":
                    torch.cuda.synchronize(timer.device)
                timer.seconds[name] += time.perf_counter() - self.start

        return _Part()


def build(config: dict, latent: tuple, text_len: int, device: torch.device, options: dict):
    """The bf16 teacher, its fp32 student copy (checkpointed, maybe compiled), text and a cached pair on the host."""
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    with torch.device(device):
        transformer = WanTransformer3DModel(**config)
    if options.get("attention_backend"):
        transformer.set_attention_backend(options["attention_backend"])
    teacher = WanTeacher(
        WanNetwork(transformer.to(torch.bfloat16).requires_grad_(False)), None, latent, guidance_scale=1.0
    )
    generator = torch.Generator().manual_seed(0)
    text = TextCondition(
        torch.randn(1, text_len, config["text_dim"], generator=generator), torch.ones(1, text_len, dtype=torch.bool)
    )
    x_n = torch.randn(1, *latent, generator=generator)
    batch = {"x_n": x_n, "x_prev": x_n + 0.01 * torch.randn(1, *latent, generator=generator), "text": text}
    return teacher, batch


def prepare(network: torch.nn.Module, options: dict) -> None:
    network.enable_activation_checkpointing()
    if options.get("compile_blocks"):
        for block in network.blocks:
            block.compile()


def to_device(batch: dict, device: torch.device) -> dict:
    text = batch["text"]
    return {
        "x_n": batch["x_n"].to(device, non_blocking=True),
        "x_prev": batch["x_prev"].to(device, non_blocking=True),
        "text": TextCondition(text.embeds.to(device), text.mask.to(device)),
    }


def seme_step(student, optimizer, batch, sigmas, device, timer: PartTimer) -> float:
    """SemEModule's step on a cached pair, part by part (online target: the student without gradient)."""
    sigma_n, sigma_prev, sigma_end = sigmas
    with timer.part("data"):
        data = to_device(batch, device)
    denoise = denoiser(student, data["text"], guidance_scale=1.0)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        with timer.part("target"), torch.no_grad():
            target = consistency_target(denoise, student.parameterization, data["x_prev"], sigma_prev, sigma_end)
        with timer.part("student_forward"):
            student_end = jump(denoise, student.parameterization, data["x_n"], sigma_n, sigma_end)
            loss = pseudo_huber(student_end, target) + temporal_coherence(student_end, target, 3)
    with timer.part("student_backward"):
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
    with timer.part("optimizer"):
        torch.nn.utils.clip_grad_norm_(student.network.parameters(), 1.0)
        optimizer.step()
    return float(loss)


def dete_step(teacher, student, discriminator, layers, optimizers, batch, sigmas, device, timer) -> float:
    """DetEModule's step (official settings: hinge, λ_adv 0.5, λ_fm 0.1 on output-head features), part by part."""
    sigma_n, sigma_prev, sigma_end = sigmas
    optimizer_g, optimizer_d = optimizers
    with timer.part("data"):
        data = to_device(batch, device)
    text = data["text"]
    denoise = denoiser(student, text, guidance_scale=1.0, expert="detail")
    with torch.autocast(device.type, dtype=torch.bfloat16):
        with timer.part("target"), torch.no_grad():
            target = consistency_target(denoise, student.parameterization, data["x_prev"], sigma_prev, sigma_end)
        with timer.part("student_forward"):
            student_end = jump(denoise, student.parameterization, data["x_n"], sigma_n, sigma_end)
            consistency = pseudo_huber(student_end, target)
        eps = torch.randn_like(student_end)
        sigma_adv = sigma_n  # at or above the phase end, as drawn
        end, adv = (student.parameterization.coefficients(s.view(-1, 1, 1, 1, 1)) for s in (sigma_end, sigma_adv))
        fake, real = renoise(student_end, end, adv, eps), renoise(target, end, adv, eps)
        with timer.part("teacher_forward"):
            fake_p = teacher.predict(fake, sigma_adv, text, 1.0, feature_blocks=layers, feature_heads=True)
            with torch.no_grad():
                real_p = teacher.predict(real, sigma_adv, text, 1.0, feature_blocks=layers, feature_heads=True)
        frames = teacher.network.feature_frames(fake.shape[2])
        with timer.part("discriminator"):
            gan = adversarial_losses(
                lambda features: discriminator(features, frames),
                fake_p.features,
                real_p.features,
                fake_p.head_features,
                real_p.head_features,
                hinge_generator_loss,
                0.5,
                0.1,
            )
    with timer.part("student_backward"):
        optimizer_g.zero_grad(set_to_none=True)
        (consistency + gan.generator).backward()
    with timer.part("optimizer"):
        torch.nn.utils.clip_grad_norm_(student.network.trainable_parameters(), 1.0)
        optimizer_g.step()
    with timer.part("discriminator"):
        optimizer_d.zero_grad(set_to_none=True)
        gan.discriminator.backward()
        optimizer_d.step()
    return float(consistency + gan.generator)


def forward_flops(model, x, sigma, text, **kwargs) -> int:
    with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.bfloat16), FlopCounterMode(display=False) as count:
        model.predict(x, sigma, text, guidance_scale=1.0, **kwargs)
    return count.get_total_flops()


def measure(stage: str, config: dict, shape: tuple, text_len: int, device, steps: int, warmup: int, options: dict):
    latent = latent_shape(*shape)
    teacher, batch = build(config, latent, text_len, device, options)
    student = teacher.student_copy()
    fused = {"fused": True} if options.get("fused_adamw") else {}
    sigmas = tuple(torch.tensor([s], device=device) for s in (0.5, 0.45, 0.4))
    flops_text = TextCondition(batch["text"].embeds.to(device), batch["text"].mask.to(device))
    x = batch["x_n"].to(device)
    if stage == "seme":
        prepare(student.network, options)
        optimizer = torch.optim.AdamW(student.network.parameters(), lr=1e-6, weight_decay=1e-3, **fused)

        def step(timer):
            return seme_step(student, optimizer, batch, sigmas, device, timer)

        forward = forward_flops(student, x, sigmas[0], flops_text)
        model_flops = 4 * forward
    else:
        network = DualExpertNetwork(student.network, WAN_PSI, 128, 256.0, LORA_TARGETS)
        student.network = network
        prepare(network, options)
        teacher.network.enable_activation_checkpointing()
        blocks = teacher.network.discriminator_blocks
        layers = every_kth_block(blocks.start, blocks.stop, 2)
        with torch.device(device):
            discriminator = FeatureDiscriminator(teacher.network.feature_dim, len(layers))
        optimizers = (
            torch.optim.AdamW(network.trainable_parameters(), lr=1e-6, weight_decay=1e-3, **fused),
            torch.optim.AdamW(discriminator.parameters(), lr=1e-5, weight_decay=1e-3, **fused),
        )

        def step(timer):
            return dete_step(teacher, student, discriminator, layers, optimizers, batch, sigmas, device, timer)

        forward = forward_flops(student, x, sigmas[0], flops_text, expert="detail")
        teacher_forward = forward_flops(teacher, x, sigmas[0], flops_text)
        model_flops = 4 * forward + 4 * teacher_forward
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(warmup):
        step(PartTimer(device))
    timer = PartTimer(device)
    start = time.perf_counter()
    for _ in range(steps):
        loss = step(timer)
    step_seconds = (time.perf_counter() - start) / steps
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak_flops = next((v for k, v in PEAK_BF16.items() if k in name), None)
    parts = {k: v / steps for k, v in timer.seconds.items()}
    student_seconds = parts.get("student_forward", 0) + parts.get("student_backward", 0)
    return {
        "stage": stage,
        "options": options,
        "device": name,
        "video_shape": {"frames": shape[0], "height": shape[1], "width": shape[2]},
        "tokens": latent[1] * (latent[2] // 2) * (latent[3] // 2),
        "step_seconds": round(step_seconds, 4),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None,
        "share": {k: round(v / sum(parts.values()), 4) for k, v in parts.items()},
        "part_seconds": {k: round(v, 4) for k, v in parts.items()},
        "student_forward_tflop": round(forward / 1e12, 3),
        "mfu": None if peak_flops is None else round(model_flops / step_seconds / peak_flops, 4),
        # the student's forward + backward alone: 3 forwards' FLOPs over their seconds
        "student_mfu": None
        if peak_flops is None or not student_seconds
        else round(3 * forward / student_seconds / peak_flops, 4),
        "final_loss": loss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a 2-layer config at 17 frames of 64×64 (CPU smoke run)")
    parser.add_argument("--stages", nargs="+", default=["seme", "dete"], choices=["seme", "dete"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=3, help="timed steps (default 3)")
    parser.add_argument(
        "--warmup", type=int, default=2, help="untimed steps first (default 2; compilation happens here)"
    )
    parser.add_argument("--out", default=None, help="JSON file for the figures")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config, shape, text_len = (TINY, (17, 64, 64), 8) if args.tiny else (WAN21_T2V_1_3B, (81, 480, 832), 512)
    results = []
    for stage in args.stages:
        for variant in args.variants:
            try:
                result = measure(stage, config, shape, text_len, device, args.steps, args.warmup, VARIANTS[variant])
            except Exception as error:  # a variant this machine cannot run (no flash kernel, OOM …) is reported
                result = {"stage": stage, "error": f"{type(error).__name__}: {error}"[:300]}
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            results.append({"variant": variant, **result})
            print(json.dumps(results[-1]), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
