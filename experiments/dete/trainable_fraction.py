"""Trainable fraction of the detail expert (LoRA on the attention projections + Ψ copies), for the
tiny student and, from its diffusers config alone (meta tensors, no weights), HunyuanVideo's 13 B.

    python -m experiments.dete.trainable_fraction > experiments/dete/trainable_fraction.json
"""

from __future__ import annotations

import json

import torch
from torch import nn

from dcm_lightning.experts import DualExpertNetwork
from dcm_lightning.networks.tiny_dit import TinyVideoDiT, tiny_dit_config
from dcm_lightning.teachers.base import LORA_TARGETS
from dcm_lightning.teachers.hunyuan_video import HUNYUAN_PSI
from dcm_lightning.teachers.tiny import TinyTeacher


def lora_parameters(model: nn.Module, rank: int, targets=LORA_TARGETS) -> int:
    """Parameters LoRA of rank r adds: r·(in + out) per targeted Linear."""
    return sum(
        rank * (module.in_features + module.out_features)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and any(name == t or name.endswith("." + t) for t in targets)
    )


def fraction(model: nn.Module, psi: tuple[str, ...], rank: int) -> dict:
    total = sum(p.numel() for p in model.parameters())
    psi_count = sum(p.numel() for name in psi for p in getattr(model, name).parameters())
    lora = lora_parameters(model, rank)
    return {
        "parameters": total,
        "lora_rank": rank,
        "lora_parameters": lora,
        "psi_modules": list(psi),
        "psi_parameters": psi_count,
        "trainable_fraction": round((lora + psi_count) / total, 5),
    }


def main() -> None:
    tiny = TinyVideoDiT(tiny_dit_config("cpu"))
    report = {"tiny_cpu_r16": fraction(tiny, TinyTeacher.psi_modules, 16)}
    # Cross-check the formula against the real wrapper on the tiny network.
    wrapped = DualExpertNetwork(
        TinyVideoDiT(tiny_dit_config("cpu")), TinyTeacher.psi_modules, lora_rank=16, lora_targets=LORA_TARGETS
    )
    assert sum(p.numel() for p in wrapped.trainable_parameters()) == (
        report["tiny_cpu_r16"]["lora_parameters"] + report["tiny_cpu_r16"]["psi_parameters"]
    )
    from diffusers import HunyuanVideoTransformer3DModel

    with torch.device("meta"):
        hunyuan = HunyuanVideoTransformer3DModel()  # the default config is HunyuanVideo's 13 B transformer
    # The adapter names Ψ on its wrapper ("transformer.…"); the bare transformer here has no prefix.
    psi = [name.removeprefix("transformer.") for name in HUNYUAN_PSI]
    report["hunyuan_video_r128"] = fraction(hunyuan, psi, 128)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
