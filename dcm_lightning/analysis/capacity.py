"""Memory per GPU of a real-teacher training config: parameters, gradients and optimizer states from
the transformer's exact parameter count (built on the meta device, no weights), activations from a
model of one checkpointed DiT block, for the config's mesh, resolution and precision — whether it fits
an 80 GB GPU, how many context-parallel ranks it would need, and whether it fits with the ranks the
config's strategy sets (``ContextParallelStrategy``'s ulysses × ring).

Everything but the parameter counts is **modeled**, not measured (no GPU here):
- weights: the frozen teacher in its dtype (bf16: 2 B), the student's fp32 master weights (4 B), for
  each trainable parameter its fp32 gradient and AdamW's two fp32 moments (12 B); all sharded by FSDP2
  over every rank (the preset shards each network per block over the whole job);
- activations, per sample (batch 1 per GPU), bf16 compute on ``s`` tokens (video plus the text tokens
  that join the attention) of width ``h``: with activation checkpointing each block keeps its fp32
  input (4·s·h B) and one block is recomputed at a time, holding ``(10 + 2·r)·s·h`` bf16 values (``r``
  the FFN ratio; attention through SDPA/flash, no s² term); without it every block holds the latter.
  The semantic expert keeps one graph (the student's); the detail expert two (its own and the
  teacher's, whose features carry the gradient of the GAN and feature-matching terms);
- a context-parallel group of C ranks splits every activation by C (sequence parallelism) — but the
  detail expert's discriminator path: its heads read the feature blocks whole on every rank (bf16; the
  real pass's, and under a split the fake pass's gathered copy too) and hold one checkpointed head's
  maps at a time (≈ 24 B per token and hidden unit);
- a reserve of 10 % of the GPU for the allocator, NCCL and the CUDA context.
``calibration`` puts the model beside the one step measured on a GPU (experiments/gpu/).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from dcm_lightning.errors import UserError

GIB = 2**30
RESERVE = 0.10
BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
# Released transformers by the name their diffusers folder usually has (used when the folder is absent).
RELEASED = {
    "hunyuanvideo": ("HunyuanVideoPipeline", {}),
    "wan2.1-t2v-1.3b": ("WanPipeline", "WAN21_T2V_1_3B"),
    "cogvideox-2b": ("CogVideoXPipeline", {}),
}
NETWORKS: dict = {}  # pipeline → adapter network class, filled on first use (imports diffusers)
JOINT_TEXT_TOKENS = {"HunyuanVideoPipeline": 256, "CogVideoXPipeline": 226, "WanPipeline": 0}  # in self-attention


@dataclass(frozen=True)
class Architecture:
    pipeline: str
    source: str  # where the parameter counts come from
    parameters: int
    lora_parameters: int  # what the detail expert's LoRA adds at the config's rank (0 for SemE)
    psi_parameters: int
    discriminator_heads: int  # every 2nd of the adapter's discriminator blocks (the official choice)
    blocks: int
    width: int
    ffn_ratio: float
    patch: tuple[int, int, int]  # t h w


def _transformer(folder: Path):
    """The config's transformer on the meta device, and where its configuration came from."""
    import diffusers

    from dcm_lightning.teachers import wan
    from dcm_lightning.teachers.pretrained import ADAPTERS, pipeline_class

    config_file = folder / "transformer" / "config.json"
    if config_file.is_file():
        pipeline = pipeline_class(folder)
        config, source = json.loads(config_file.read_text()), f"{config_file}"
    else:
        released = next((v for k, v in RELEASED.items() if folder.name.lower().startswith(k)), None)
        if released is None:
            raise UserError(f"{folder} has no transformer/config.json and is not a released model's folder name.")
        pipeline, config = released
        config = getattr(wan, config) if isinstance(config, str) else config
        source = f"the released {folder.name} configuration (folder absent)"
    model_class = getattr(diffusers, ADAPTERS[pipeline].transformer_class)
    with torch.device("meta"):
        model = model_class.from_config(config) if config_file.is_file() else model_class(**config)
    return pipeline, model, source


def architecture(folder: str | Path, lora_rank: int = 0) -> Architecture:
    from dcm_lightning.teachers.cogvideox import CogVideoXNetwork
    from dcm_lightning.teachers.hunyuan_video import HunyuanVideoNetwork
    from dcm_lightning.teachers.pretrained import ADAPTERS
    from dcm_lightning.teachers.wan import WanNetwork

    NETWORKS.update(
        HunyuanVideoPipeline=HunyuanVideoNetwork, WanPipeline=WanNetwork, CogVideoXPipeline=CogVideoXNetwork
    )
    pipeline, model, source = _transformer(Path(folder))
    adapter = ADAPTERS[pipeline]
    config = model.config
    width = config.num_attention_heads * config.attention_head_dim
    blocks = [m for name, m in model.named_children() if isinstance(m, torch.nn.ModuleList)]
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    lora = sum(
        lora_rank * (m.in_features + m.out_features)
        for name, m in linears
        if any(name.endswith("." + target) for target in adapter.lora_targets)
    )
    psi = sum(
        p.numel()
        for name in adapter.psi_modules
        for p in model.get_submodule(name.removeprefix("transformer.")).parameters()
    )
    ffn = next((m.out_features for n, m in linears if n.endswith(("net.0.proj", "proj_mlp"))), 4 * width)
    patch = config.patch_size
    patch = (
        tuple(patch) if isinstance(patch, list | tuple) else (getattr(config, "patch_size_t", None) or 1, patch, patch)
    )
    network = NETWORKS[pipeline](model)
    heads = len(range(network.discriminator_blocks.start, network.discriminator_blocks.stop, 2))
    return Architecture(
        pipeline,
        source,
        sum(p.numel() for p in model.parameters()),
        lora,
        psi,
        heads,
        sum(len(b) for b in blocks),
        width,
        ffn / width,
        tuple(patch),
    )


def discriminator_parameters(arch: Architecture, hidden_dim: int) -> int:
    """The official heads (two 1×1 convs of ``hidden_dim`` and a logit) on each feature block."""
    from dcm_lightning.networks.discriminator import FeatureDiscriminator

    with torch.device("meta"):
        heads = FeatureDiscriminator(arch.width, arch.discriminator_heads, hidden_dim, 32, 0.01, "frame")
    return sum(p.numel() for p in heads.parameters())


def tokens(arch: Architecture, frames: int, height: int, width: int) -> int:
    """Video tokens (4× temporal, 8× spatial VAE; the patch) plus the text tokens in the attention."""
    latent_frames = (frames - 1) // 4 + 1
    t, h, w = arch.patch
    video = math.ceil(latent_frames / t) * (height // 8 // h) * (width // 8 // w)
    return video + JOINT_TEXT_TOKENS[arch.pipeline]


def per_gpu(
    arch: Architecture,
    sequence: int,
    stage: str,
    ranks: int,
    context_parallel: int = 1,
    checkpointing: bool = True,
    teacher_dtype: str = "bfloat16",
    ema: bool = False,
    discriminator_parameters: int = 0,
    discriminator_hidden: int = 0,
) -> dict[str, float]:
    """Bytes per GPU (GiB) by part, for ``stage`` "seme" or "dete" on ``ranks`` GPUs."""
    p = arch.parameters
    trainable = p if stage == "seme" else arch.lora_parameters + arch.psi_parameters + discriminator_parameters
    frozen_student = 0 if stage == "seme" else p  # the detail expert's frozen semantic network (fp32)
    weights = (p * BYTES[teacher_dtype] + 4 * (trainable + frozen_student) + (4 * p if ema else 0)) / ranks
    states = 12 * trainable / ranks
    s, h = sequence / context_parallel, arch.width
    block = (10 + 2 * arch.ffn_ratio) * s * h * 2
    graphs = 1 if stage == "seme" else 2
    stored = graphs * arch.blocks * (4 * s * h if checkpointing else block)
    activations = stored + (block if checkpointing else 0)
    parts = {"weights": weights / GIB, "gradients_and_optimizer": states / GIB, "activations": activations / GIB}
    if stage == "dete":
        # The discriminator's path is not split: its heads read each feature block whole (bf16) — the real
        # pass's, and under context parallelism the fake pass's gathered copy too — plus one checkpointed
        # head's maps at a time (about 24 B per token and hidden unit: two 1×1 convs, their norms and acts).
        copies = 2 if context_parallel > 1 else 1
        features = copies * arch.discriminator_heads * sequence * h * 2
        parts["discriminator_path"] = (features + 24 * sequence * discriminator_hidden) / GIB
    return parts


def plan(
    folder,
    frames,
    height,
    width,
    stage,
    ranks,
    gpu_gib=80.0,
    lora_rank=0,
    discriminator_hidden=0,
    context_parallel=1,
    **options,
) -> dict:
    """The memory per GPU without context parallelism, the fewest context-parallel ranks (a power of
    two up to 8) with which it fits ``gpu_gib`` less the reserve, and the memory with the
    ``context_parallel`` ranks the config's strategy sets."""
    arch = architecture(folder, lora_rank)
    sequence = tokens(arch, frames, height, width)
    if discriminator_hidden:
        options["discriminator_parameters"] = discriminator_parameters(arch, discriminator_hidden)
        options["discriminator_hidden"] = discriminator_hidden
    budget = gpu_gib * (1 - RESERVE)
    rows = {c: per_gpu(arch, sequence, stage, ranks, c, **options) for c in sorted({1, 2, 4, 8, context_parallel})}
    needed = next((c for c, row in rows.items() if c in (1, 2, 4, 8) and sum(row.values()) <= budget), None)
    configured = round(sum(rows[context_parallel].values()), 2)
    return {
        "context_parallel": context_parallel,
        "configured_total_gib": configured,
        "fits_as_configured": configured <= budget,
        "architecture": asdict(arch),
        "tokens": sequence,
        "stage": stage,
        "ranks": ranks,
        "budget_gib": budget,
        "per_gpu_gib": {k: round(v, 2) for k, v in rows[1].items()},
        "total_gib": round(sum(rows[1].values()), 2),
        "fits": needed == 1,
        "context_parallel_needed": needed,
        "total_gib_by_context_parallel": {c: round(sum(row.values()), 2) for c, row in rows.items()},
    }


def _semantic_config(config: Path, semantic_checkpoint: str) -> Path:
    """The SemE config beside ``config`` whose run writes ``semantic_checkpoint``."""
    from dcm_lightning.lightning_cli import compose_documented

    run = Path(semantic_checkpoint).parent.parent
    for candidate in sorted(config.parent.glob("seme_*.yaml")):
        if Path(compose_documented(candidate, config.parents[1])["trainer"]["default_root_dir"]) == run:
            return candidate
    raise UserError(f"no SemE config beside {config} writes {semantic_checkpoint}; its teacher is unknown.")


def capacity_of_config(config: Path, gpu_gib: float = 80.0) -> dict:
    """``plan`` for a shipped real config, run as its header documents (preset first)."""
    from dcm_lightning.lightning_cli import compose_documented

    values = compose_documented(config, config.parents[1])
    trainer, model = values["trainer"], values["model"]["init_args"]
    stage = "dete" if values["model"]["class_path"].endswith("DetEModule") else "seme"
    teacher_model = model
    if stage == "dete":
        semantic = _semantic_config(config, model["semantic_checkpoint"])
        teacher_model = compose_documented(semantic, config.parents[1])["model"]["init_args"]
    teacher = teacher_model.get("teacher")
    if not isinstance(teacher, dict):
        raise UserError(f"{config} trains the tiny tier; capacity is for the real teachers' configs.")
    ranks = int(trainer.get("num_nodes", 1)) * int(trainer.get("devices", 1))
    lora = int((model.get("detail") or {}).get("lora_rank", 0)) if stage == "dete" else 0
    strategy = trainer.get("strategy")
    split = strategy.get("init_args", {}) if isinstance(strategy, dict) else {}
    context = int(split.get("ulysses", 1)) * int(split.get("ring", 1))
    result = plan(
        Path(teacher["path"]),
        teacher["num_frames"],
        teacher["height"],
        teacher["width"],
        stage,
        ranks,
        gpu_gib,
        lora,
        checkpointing=bool(model.get("activation_checkpointing", False)),
        teacher_dtype=teacher.get("dtype", "bfloat16"),
        ema=model.get("target_network") == "ema",
        discriminator_hidden=int((model.get("discriminator") or {}).get("hidden_dim", 0)) if stage == "dete" else 0,
        context_parallel=context,
    )
    return {"config": str(config), "precision": trainer.get("precision"), **result}


def capacity_table(plans: list[dict], gpu_gib: float) -> str:
    """The plans as a Markdown table (GiB per GPU; the model's assumptions are in this module's docstring)."""
    lines = [
        f"| config | stage | tokens | GPUs | weights | grads + AdamW | activations | discriminator path | total | "
        f"fits {gpu_gib:g} GiB "
        f"(−{RESERVE:.0%}) | context-parallel ranks needed | the config's ranks | total with them | fits "
        "| parameters from |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---|",
    ]
    for p in plans:
        gib, arch = p["per_gpu_gib"], p["architecture"]
        needed = p["context_parallel_needed"] or "more than 8"
        lines.append(
            f"| {Path(p['config']).name} | {p['stage']} | {p['tokens']:,} | {p['ranks']} | {gib['weights']:.1f} | "
            f"{gib['gradients_and_optimizer']:.1f} | {gib['activations']:.1f} | "
            f"{gib.get('discriminator_path', 0):.1f} | {p['total_gib']:.1f} | "
            f"{'yes' if p['fits'] else 'no'} | {needed} | {p['context_parallel']} | {p['configured_total_gib']:.1f} | "
            f"{'yes' if p['fits_as_configured'] else 'no'} | {arch['source']} |"
        )
    return "\n".join(lines)
