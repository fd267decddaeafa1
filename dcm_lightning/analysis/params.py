"""Relative parameter difference between two networks, grouped by module kind — the analysis that
motivates DCM's detail expert: if two separately trained experts differ mostly in the timestep /
condition embeddings and the attention projections, a LoRA on those projections plus fresh copies
Ψ of the embeddings can turn one into the other."""

from __future__ import annotations

import re
from pathlib import Path

from torch import Tensor, nn

from dcm_lightning.errors import UserError

# (kind, pattern) in order: the first whose pattern matches a parameter's dotted name decides.
KINDS = (
    (
        "timestep/condition embeddings",
        r"time_embed|timestep_embed|time_text_embed|time_proj|guidance_embed|condition_embedder|"
        r"pooled_text_embedder|text_embedder|context_embedder|time_embedding|caption_projection|text_proj",
    ),
    ("norms", r"norm_(q|k|added_q|added_k)\b"),  # the q/k norms inside attention
    ("attention linears", r"(^|\.)(attn\d?|attention)\.|to_q|to_k|to_v|to_out|add_[qkv]_proj|to_add_out"),
    ("FFN", r"(^|\.)(ff|ffn|mlp|ff_context)\.|proj_mlp|(^|\.)ffn\b"),
    ("norms", r"norm|adaln|modulation|scale_shift_table"),  # with the AdaLN modulation linears
)
KIND_NAMES = ("timestep/condition embeddings", "attention linears", "FFN", "norms", "other")


def module_kind(name: str) -> str:
    """The kind of the module a parameter (by dotted name) belongs to."""
    for kind, pattern in KINDS:
        if re.search(pattern, name):
            return kind
    return "other"


def squared_differences(a: dict[str, Tensor], b: dict[str, Tensor]) -> dict[str, tuple[float, float, int]]:
    """Per parameter (sorted by name): (‖θ_B − θ_A‖², ‖θ_A‖², size), in float64; A and B must hold the
    same parameters with the same shapes."""
    if a.keys() != b.keys():
        only = sorted(a.keys() ^ b.keys())[:3]
        raise UserError(
            f"the two networks have different parameters (e.g. {only}); compare networks of one architecture."
        )
    out = {}
    for name in sorted(a):
        x, y = a[name].double(), b[name].double()
        if x.shape != y.shape:
            raise UserError(f"parameter {name} has shape {tuple(x.shape)} in A but {tuple(y.shape)} in B.")
        out[name] = (float((y - x).square().sum()), float(x.square().sum()), x.numel())
    return out


def _ratio(diff2: float, base2: float) -> float:
    return (diff2 / base2) ** 0.5 if base2 > 0 else 0.0


def relative_difference_by_kind(a: dict[str, Tensor], b: dict[str, Tensor]) -> dict[str, dict[str, float]]:
    """Per module kind: ‖θ_B − θ_A‖ / ‖θ_A‖ over all its parameters together, the parameter count,
    and the mean over its tensors of each tensor's own relative difference."""
    return difference_by_kind(squared_differences(a, b))


def difference_by_kind(differences: dict[str, tuple[float, float, int]]) -> dict[str, dict[str, float]]:
    """``relative_difference_by_kind`` from already computed ``squared_differences``."""
    sums: dict[str, dict[str, float]] = {}
    for name, (diff2, base2, size) in differences.items():
        kind = sums.setdefault(module_kind(name), {"diff2": 0.0, "base2": 0.0, "count": 0, "tensors": 0, "rel": 0.0})
        kind["diff2"] += diff2
        kind["base2"] += base2
        kind["count"] += size
        kind["tensors"] += 1
        kind["rel"] += _ratio(diff2, base2)
    return {
        kind: {
            "relative_difference": _ratio(v["diff2"], v["base2"]),
            "mean_tensor_relative_difference": v["rel"] / v["tensors"],
            "parameters": int(v["count"]),
        }
        for kind, v in sorted(sums.items(), key=lambda item: KIND_NAMES.index(item[0]))
    }


def largest_tensor_differences(a: dict[str, Tensor], b: dict[str, Tensor], top: int) -> list[dict]:
    """The ``top`` parameters whose ‖θ_B − θ_A‖ / ‖θ_A‖ is largest (name, kind, that ratio, size), to
    see which module inside a kind moved."""
    return largest_differences(squared_differences(a, b), top)


def largest_differences(differences: dict[str, tuple[float, float, int]], top: int) -> list[dict]:
    """``largest_tensor_differences`` from already computed ``squared_differences``."""
    rows = [
        {"name": name, "kind": module_kind(name), "relative_difference": _ratio(diff2, base2), "size": size}
        for name, (diff2, base2, size) in differences.items()
    ]
    return sorted(rows, key=lambda row: -row["relative_difference"])[:top]


def network_weights(path: str | Path) -> dict[str, Tensor]:
    """The weights of the network a user points at: a teacher (folder or TeacherModule checkpoint),
    a distilled student (checkpoint or exported folder). A dual-expert student gives its detail
    expert as one plain network (adapters merged, Ψ in place), comparable with its semantic expert
    or the teacher."""
    from dcm_lightning.checkpoints import is_module_checkpoint
    from dcm_lightning.experts import DualExpertNetwork
    from dcm_lightning.generation import STUDENT_MODULES, student_module_from_checkpoint
    from dcm_lightning.students import is_student_folder, load_student
    from dcm_lightning.teachers.loading import load_teacher

    if is_student_folder(path):
        network = load_student(path, pipeline_parts=False)[0].network
    elif is_module_checkpoint(path, *STUDENT_MODULES):
        network = student_module_from_checkpoint(path)[0].student.network
    else:
        network = load_teacher(path).network
    if isinstance(network, DualExpertNetwork):
        network = network.merged_detail_network()
    return _plain_state(network)


def _plain_state(network: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().float().cpu() for k, v in network.state_dict().items() if v.is_floating_point()}
