"""The detail expert as two small files a stock diffusers pipeline can apply (docs/design.md §2 "Detail
expert"): its LoRA adapters in diffusers' LoRA format, and its Ψ — the trainable copies of the
timestep-dependent layers — keyed as the plain transformer's own weights.

``write_detail_adapters(network, folder, pipeline)`` writes, for a ``DualExpertNetwork`` in LoRA mode
around a diffusers transformer (a ``DiffusersNetwork``, which holds it as ``.transformer``):

- ``folder/detail_lora/pytorch_lora_weights.safetensors``: the A/B factors, keyed
  ``transformer.<module>.lora_A.weight``, with diffusers' ``lora_adapter_metadata``
  ``{"transformer.r": r, "transformer.lora_alpha": α, "transformer.target_modules": […]}``;
- ``folder/detail_psi.safetensors``: Ψ, keyed as the transformer's state dict (``proj_out.weight`` …),
  its metadata naming the content, the transformer class, Ψ and the LoRA settings.

The α metadata matters: without it diffusers assumes α = r and scales every adapter by 1 instead of
α / r. ``load_detail_adapters(network, folder)`` is the inverse, into a freshly built network of the
same settings.

The adapters and Ψ sit on top of the **semantic expert**, so they go into a pipeline whose transformer
holds its weights: an exported student's ``transformer/``, or the teacher's own transformer only where
the semantic expert is the teacher. Wan (HunyuanVideo and CogVideoX alike, with
``HunyuanVideoPipeline`` / ``CogVideoXPipeline`` and their transformer classes)::

    semantic = WanTransformer3DModel.from_pretrained(export, subfolder="transformer")
    pipe = WanPipeline.from_pretrained(teacher, transformer=semantic)
    pipe.load_lora_weights(f"{export}/detail_lora")
    pipe.transformer.load_state_dict(load_file(f"{export}/detail_psi.safetensors"), strict=False)

(``load_file`` is ``safetensors.torch.load_file``; the last call's ``unexpected_keys`` is empty.)
``pipe.transformer`` is then the detail expert. For Wan's two-transformer switch (semantic above the
boundary, detail below) pass ``transformer_2=copy.deepcopy(semantic), boundary_ratio=…`` to
``from_pretrained``, load with ``load_lora_weights(…, load_into_transformer_2=True)`` and load Ψ into
``pipe.transformer_2``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from dcm_lightning.errors import UserError
from dcm_lightning.experts import DualExpertNetwork, semantic_weight_sources

LORA_FOLDER = "detail_lora"
LORA_FILE = "pytorch_lora_weights.safetensors"  # diffusers' default LoRA weight name
PSI_FILE = "detail_psi.safetensors"
PSI_CONTENT = "dcm_lightning detail expert: Ψ, trainable copies of the timestep-dependent layers"
# diffusers' LoRA files key the transformer's adapters under its pipeline component name; the
# network wrappers hold the transformer under the same name (DiffusersNetwork.transformer).
COMPONENT = "transformer"
_ADAPTER = re.compile(r"\.(lora_[AB])\.default\.")  # peft's adapter name in this package's layers


def write_detail_adapters(
    network: DualExpertNetwork, folder: str | Path, pipeline: str | type, dtype: torch.dtype | None = None
) -> tuple[Path, Path]:
    """Write the detail expert of ``network`` (LoRA mode) as ``folder/detail_lora/`` (diffusers' LoRA
    format, with r, α and the target modules as metadata) and ``folder/detail_psi.safetensors`` (Ψ,
    keyed as the plain transformer's state dict). Returns both paths.

    Args:
        network: a LoRA-mode dual-expert network around a diffusers transformer (``.transformer``).
        folder: where to write (created if missing).
        pipeline: the teacher family's diffusers pipeline class, or its name (the teacher adapter's
            ``pipeline_name``, e.g. "WanPipeline"); its ``save_lora_weights`` writes the LoRA file.
        dtype: the dtype to store (e.g. ``torch.bfloat16``); None keeps the network's.
    """
    import diffusers

    _require_lora(network)
    pipeline_class = getattr(diffusers, pipeline) if isinstance(pipeline, str) else pipeline
    loads_transformer = getattr(pipeline_class, "transformer_name", None) == COMPONENT
    if not (hasattr(pipeline_class, "save_lora_weights") and loads_transformer):
        raise UserError(f"{pipeline!r} is not a diffusers pipeline that loads LoRA adapters into its transformer.")
    keys = _file_keys(network)
    adapters, psi = {}, {}
    for name, tensor in network.trainable_state_dict().items():
        tensor = tensor.to(dtype) if dtype is not None else tensor
        file, key = keys[name]
        (adapters if file == "lora" else psi)[key] = tensor.contiguous()
    folder, settings = Path(folder), network.settings
    folder.mkdir(parents=True, exist_ok=True)
    pipeline_class.save_lora_weights(
        folder / LORA_FOLDER,
        transformer_lora_layers=adapters,  # keys without the component; diffusers prefixes "transformer."
        weight_name=LORA_FILE,
        transformer_lora_adapter_metadata={
            "r": settings["lora_rank"],
            "lora_alpha": settings["lora_alpha"],
            "target_modules": list(settings["lora_targets"]),
        },
    )
    metadata = {
        "format": "pt",
        "content": PSI_CONTENT,
        "transformer_class": type(network.semantic.transformer).__name__,
        "psi": json.dumps([name.removeprefix(f"{COMPONENT}.") for name in settings["psi"]]),
        "lora_rank": str(settings["lora_rank"]),
        "lora_alpha": str(settings["lora_alpha"]),
        "lora_targets": json.dumps(list(settings["lora_targets"])),
        "usage": f"after pipe.load_lora_weights({LORA_FOLDER}/): "
        f"pipe.transformer.load_state_dict(load_file({PSI_FILE}), strict=False)",
    }
    save_file(psi, folder / PSI_FILE, metadata=metadata)
    return folder / LORA_FOLDER / LORA_FILE, folder / PSI_FILE


def load_detail_adapters(network: DualExpertNetwork, folder: str | Path) -> None:
    """Fill the adapters and Ψ of ``network`` — built fresh with the settings the files were written
    from — from ``write_detail_adapters``'s two files in ``folder``, so that its detail path is the
    written one. The file's r and α (diffusers' reading: α = r when the metadata has none) must be
    the network's: they fix the adapters' scale α / r."""
    _require_lora(network)
    folder = Path(folder)
    lora_path, psi_path = folder / LORA_FOLDER / LORA_FILE, folder / PSI_FILE
    missing = [str(p) for p in (lora_path, psi_path) if not p.is_file()]
    if missing:
        raise UserError(f"{folder} holds no detail expert export: {', '.join(missing)} missing.")
    # (a key outside the component keeps its name, is left over and refused below)
    adapters = {key.removeprefix(f"{COMPONENT}."): tensor for key, tensor in load_file(lora_path).items()}
    # r and α as diffusers reads them: the metadata's, else r from the factors' shape and α = r.
    config = lora_metadata(lora_path)
    rank = int(config.get("r", next((t.shape[0] for k, t in adapters.items() if ".lora_A." in k), 0)))
    alpha = float(config.get("lora_alpha", rank))
    settings = network.settings
    if (rank, alpha) != (settings["lora_rank"], float(settings["lora_alpha"])):
        raise UserError(
            f"{lora_path} holds LoRA r = {rank}, α = {alpha:g}, but the network was built with "
            f"r = {settings['lora_rank']}, α = {settings['lora_alpha']:g}; build it with the file's."
        )
    files = {"lora": adapters, "psi": load_file(psi_path)}
    state = {}
    for name, (file, key) in _file_keys(network).items():
        if key in files[file]:
            state[name] = files[file].pop(key)
    leftover = [key for tensors in files.values() for key in tensors]
    if leftover or len(state) != len(network.trainable_names()):
        raise UserError(f"the detail expert in {folder} was written for another network or LoRA configuration.")
    network.load_trainable_state_dict(state)


def lora_metadata(lora_path: str | Path) -> dict:
    """The LoRA settings a diffusers LoRA file carries for the transformer (r, lora_alpha,
    target_modules …); empty when it has none (diffusers then assumes α = r)."""
    with safe_open(Path(lora_path), framework="pt") as file:
        raw = (file.metadata() or {}).get("lora_adapter_metadata")
    config = json.loads(raw) if raw else {}
    return {k.removeprefix(f"{COMPONENT}."): v for k, v in config.items() if k.startswith(f"{COMPONENT}.")}


def _require_lora(network: DualExpertNetwork) -> None:
    if network.mode != "lora":
        raise UserError(
            f"a {network.mode!r}-mode detail expert is a full copy, not LoRA adapters; export its merged "
            "transformer (merged_detail_network) instead of a LoRA file."
        )


def _file_keys(network: DualExpertNetwork) -> dict[str, tuple[str, str]]:
    """Each trainable name of ``network`` → (file, key): ("lora", the adapter's key in diffusers' LoRA
    file without the component prefix) or ("psi", its key in the plain transformer's state dict)."""
    names = network.trainable_names()
    prefix = f"semantic.{COMPONENT}."
    psi_sources = semantic_weight_sources([n for n in names if "lora_" not in n])
    if not all(n.startswith(prefix) for n in names if "lora_" in n) or not all(
        source.startswith(f"{COMPONENT}.") for source in psi_sources.values()
    ):
        raise UserError(
            f"this detail expert's network does not hold a diffusers transformer as .{COMPONENT}; only a "
            "diffusers teacher's student is written as a diffusers LoRA."
        )
    keys = {name: ("psi", source.removeprefix(f"{COMPONENT}.")) for name, source in psi_sources.items()}
    psi_paths = [name.removeprefix(f"{COMPONENT}.") + "." for name in network.settings["psi"]]
    for name in names:
        if "lora_" in name:
            key = _ADAPTER.sub(r".\1.", name.removeprefix(prefix))
            if any(key.startswith(path) for path in psi_paths):
                # The detail path uses the Ψ copy there, without the adapter diffusers would add.
                raise UserError(f"the LoRA target {key} lies inside a Ψ module; drop it from lora_targets or Ψ.")
            keys[name] = ("lora", key)
    return keys
