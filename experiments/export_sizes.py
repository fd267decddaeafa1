"""How large a detail expert export is, merged (a full ``transformer_2/``) against LoRA + Ψ
(``detail_lora/`` + ``detail_psi.safetensors``, dcm_lightning/detail_lora.py), at the released
teachers' sizes. Arithmetic on the meta device: the real diffusers transformers are built without
memory, wrapped in a LoRA-mode ``DualExpertNetwork`` as DetE builds it (r 128 on the teacher
adapter's LoRA targets, the family's Ψ), and their tensors counted; nothing is downloaded.

``python -m experiments.export_sizes`` prints the table.
"""

from __future__ import annotations

import diffusers
import torch

from dcm_lightning.experts import DualExpertNetwork
from dcm_lightning.teachers.base import LORA_TARGETS
from dcm_lightning.teachers.cogvideox import COGVIDEOX_PSI, CogVideoXNetwork
from dcm_lightning.teachers.hunyuan_video import HUNYUAN_PSI, HunyuanVideoNetwork
from dcm_lightning.teachers.wan import WAN21_T2V_1_3B, WAN_PSI, WanNetwork

RANK, ALPHA = 128, 256.0  # official DCM
BF16_BYTES = 2
# name → (transformer class, its config, the network wrapper, Ψ). HunyuanVideo's and CogVideoX's
# diffusers defaults are the released HunyuanVideo (13B) and CogVideoX-2B transformers.
TEACHERS = {
    "HunyuanVideo": (diffusers.HunyuanVideoTransformer3DModel, {}, HunyuanVideoNetwork, HUNYUAN_PSI),
    "Wan2.1-T2V-1.3B": (diffusers.WanTransformer3DModel, WAN21_T2V_1_3B, WanNetwork, WAN_PSI),
    "CogVideoX-2B": (diffusers.CogVideoXTransformer3DModel, {}, CogVideoXNetwork, COGVIDEOX_PSI),
}


def export_sizes(name: str) -> dict[str, int]:
    """Parameter counts of ``name``'s merged detail transformer, its LoRA factors and its Ψ."""
    transformer_class, config, wrapper, psi = TEACHERS[name]
    with torch.device("meta"):
        network = DualExpertNetwork(
            wrapper(transformer_class(**config)), psi, lora_rank=RANK, lora_alpha=ALPHA, lora_targets=LORA_TARGETS
        )
    numel = {name: parameter.numel() for name, parameter in network.named_parameters()}
    trainable = network.trainable_names()
    return {
        # the merged detail transformer has the semantic one's shapes: Ψ and merged layers replace theirs
        "merged": sum(v for n, v in numel.items() if n.startswith("semantic.") and "lora_" not in n),
        "lora": sum(numel[n] for n in trainable if "lora_" in n),
        "psi": sum(numel[n] for n in trainable if "lora_" not in n),
    }


def _millions(count: int) -> str:
    return f"{count / 1e6:,.1f} M"


def _gigabytes(count: int) -> str:
    return f"{count * BF16_BYTES / 1e9:,.3f} GB"


def main() -> None:
    header = ("teacher", "merged detail", "bf16", "LoRA (r 128)", "Ψ", "LoRA + Ψ", "bf16", "ratio")
    rows = []
    for name in TEACHERS:
        sizes = export_sizes(name)
        small = sizes["lora"] + sizes["psi"]
        rows.append(
            (
                name,
                _millions(sizes["merged"]),
                _gigabytes(sizes["merged"]),
                _millions(sizes["lora"]),
                _millions(sizes["psi"]),
                _millions(small),
                _gigabytes(small),
                f"{sizes['merged'] / small:.1f}×",
            )
        )
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    print(f"LoRA r {RANK} on {', '.join(LORA_TARGETS)}; bf16 = {BF16_BYTES} bytes per parameter (GB = 1e9 bytes).")


if __name__ == "__main__":
    main()
