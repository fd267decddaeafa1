"""The dual-expert network (docs/design.md §2 "Detail expert"): one frozen semantic network and a detail
path over the same weights, with LoRA adapters on the attention projections and trainable copies Ψ
of the timestep-dependent layers.

Which expert runs is an explicit argument of every call — never a patched class ``forward``:
``network(x, t, text, mask, expert="semantic")`` runs SemE with adapters and Ψ off, ``expert="detail"``
runs the same blocks with the adapters on and Ψ in place of the semantic layers. The caller picks
the expert from the noise level (``expert_at``: above σ_b the semantic one), so the boundary is
known only where κ is — in the schedule — and never stored a second time here. The trainable
parameters are chosen once, by name, at construction: peft's adapter switches flip
``requires_grad``, which must not decide what an optimizer or an FSDP2 shard trains.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import Tensor, nn

from dcm_lightning.errors import UserError

Expert = Literal["semantic", "detail"]


def expert_at(sigma: Tensor, boundary_sigma: float | Tensor) -> Expert:
    """The expert that owns noise level σ (a 0-d tensor): the semantic one on (σ_b, 1], the detail one on
    [0, σ_b]. Compared in σ's own dtype, so σ_κ itself — rounded like σ_b — belongs to the detail expert."""
    return "semantic" if bool(sigma > torch.as_tensor(boundary_sigma, dtype=sigma.dtype)) else "detail"


class DualExpertNetwork(nn.Module):
    """Wraps a (semantic) network; the detail expert is ``mode="lora"`` (LoRA + Ψ, DCM) or
    ``mode="full"`` (a full-parameter second copy, the ablation's "+OD" row).

    Args:
        semantic: the trained semantic expert's network; frozen here.
        psi: dotted names of its timestep-dependent modules (or parameters) that the detail expert
            re-learns, e.g. ``time_embedder`` or ``condition_embedder.time_proj``.
        lora_rank, lora_alpha: LoRA r and α (official DCM: 128, 256).
        lora_targets: module-name suffixes that get adapters (the teacher adapter's ``lora_targets``).
        mode: "lora" or "full".
    """

    def __init__(
        self,
        semantic: nn.Module,
        psi: Sequence[str],
        lora_rank: int = 16,
        lora_alpha: float = 32.0,
        lora_targets: Sequence[str] = (),
        mode: Literal["lora", "full"] = "lora",
    ) -> None:
        super().__init__()
        self.settings = {
            "psi": list(psi),
            "lora_rank": lora_rank,
            "lora_alpha": lora_alpha,
            "lora_targets": list(lora_targets),
            "mode": mode,
        }  # what rebuilds this wrapper around a fresh network (see students.py)
        if mode not in ("lora", "full"):
            raise UserError(f"the detail expert mode must be 'lora' or 'full', got {mode!r}.")
        if mode == "lora" and not lora_targets:
            raise UserError("a LoRA detail expert needs lora_targets (the teacher adapter's, e.g. to_q, to_k …).")
        self.mode = mode
        self.semantic = semantic.requires_grad_(False)
        if mode == "full":
            self.detail = copy.deepcopy(semantic).requires_grad_(True)
            self._trainable = [f"detail.{name}" for name, _ in self.detail.named_parameters()]
            return
        missing = [name for name in psi if _lookup(semantic, name) is None]
        if missing:
            raise UserError(f"Ψ names {missing} are neither modules nor parameters of {type(semantic).__name__}.")
        # Ψ copies, keyed by their dotted path with "." spelled "/" (module names cannot hold dots).
        psi_modules = {n: _lookup(semantic, n) for n in psi if isinstance(_lookup(semantic, n), nn.Module)}
        psi_parameters = {n: _lookup(semantic, n) for n in psi if n not in psi_modules}
        self.psi = nn.ModuleDict({_key(n): copy.deepcopy(m) for n, m in psi_modules.items()}).requires_grad_(True)
        self.psi_parameters = nn.ParameterDict(
            {_key(n): nn.Parameter(p.detach().clone()) for n, p in psi_parameters.items()}
        )
        config = LoraConfig(r=lora_rank, lora_alpha=lora_alpha, target_modules=list(lora_targets), lora_dropout=0.0)
        try:
            inject_adapter_in_model(config, self.semantic)
        except ValueError:  # peft's NoMatchingPeftModuleError is one
            raise UserError(
                f"no module of {type(semantic).__name__} matches the LoRA targets {list(lora_targets)}."
            ) from None
        adapters = [f"semantic.{n}" for n, _ in self.semantic.named_parameters() if "lora_" in n]
        self._trainable = adapters + [f"psi.{n}" for n, _ in self.psi.named_parameters()]
        self._trainable += [f"psi_parameters.{n}" for n, _ in self.psi_parameters.named_parameters()]
        for name, parameter in self.named_parameters():
            parameter.requires_grad_(name in self._trainable)

    def _detail_view(self) -> nn.Module:
        """The detail path: shallow copies of the semantic network (and of the parents of nested Ψ
        slots) whose Ψ slots hold the trainable copies; everything else, adapters included, is shared
        with the semantic network. Built at each call, so it holds the parameters registered now —
        FSDP2 swaps sharded and unsharded parameters in place — and never registers one twice."""
        replacements: dict = {_path(k): m for k, m in self.psi.items()}
        replacements.update({_path(k): p for k, p in self.psi_parameters.items()})
        return _view_with(self.semantic, replacements)

    @property
    def config(self):
        """The wrapped network's architecture config (both experts share it)."""
        return self.semantic.config

    @property
    def blocks(self) -> nn.ModuleList:
        """The transformer blocks of both experts (shared in LoRA mode): the FSDP2 units."""
        return nn.ModuleList([*self.semantic.blocks, *(self.detail.blocks if self.mode == "full" else ())])

    @property
    def feature_dim(self) -> int:
        return self.semantic.feature_dim

    def enable_activation_checkpointing(self) -> None:
        for network in [self.semantic] + ([self.detail] if self.mode == "full" else []):
            network.enable_activation_checkpointing()

    def enable_context_parallel(self, group) -> None:
        """Both experts' tokens split over ``group`` (context_parallel.py); the Ψ copies get the splits
        and gathers of the modules they stand in for."""
        if self.mode == "full":
            self.semantic.enable_context_parallel(group)
            self.detail.enable_context_parallel(group)
            return
        self.semantic.enable_context_parallel(group, {_path(key): module for key, module in self.psi.items()})

    # ---- routing ---------------------------------------------------------------------------------

    def forward(self, x: Tensor, timestep: Tensor, *args, expert: Expert | None = None, **kwargs):
        """The wrapped network's call (x, timestep, text_embeds, text_mask, …) answered by ``expert``."""
        if expert == "semantic":
            with self._adapters(enabled=False):
                return self.semantic(x, timestep, *args, **kwargs)
        if expert != "detail":
            raise ValueError(f"a dual-expert network needs expert='semantic' or 'detail', got {expert!r}")
        if self.mode == "full":
            return self.detail(x, timestep, *args, **kwargs)
        with self._adapters(enabled=True):
            return self._detail_view()(x, timestep, *args, **kwargs)

    @contextmanager
    def _adapters(self, enabled: bool) -> Iterator[None]:
        # peft's enable_adapters() would also flip requires_grad; only the switch itself is wanted.
        layers = [m for m in self.semantic.modules() if isinstance(m, BaseTunerLayer)]
        previous = [layer._disable_adapters for layer in layers]
        for layer in layers:
            layer._disable_adapters = not enabled
        try:
            yield
        finally:
            for layer, state in zip(layers, previous, strict=True):
                layer._disable_adapters = state

    # ---- what trains, what is saved ------------------------------------------------------------------

    def trainable_names(self) -> list[str]:
        return list(self._trainable)

    def trainable_parameters(self) -> list[nn.Parameter]:
        parameters = dict(self.named_parameters())
        return [parameters[name] for name in self._trainable]

    def trainable_state_dict(self) -> dict[str, Tensor]:
        """Only the detail expert's own weights (adapters and Ψ, or the full copy)."""
        parameters = dict(self.named_parameters())
        return {name: parameters[name].detach().clone() for name in self._trainable}

    def load_trainable_state_dict(self, state: dict[str, Tensor]) -> None:
        if sorted(state) != sorted(self._trainable):
            raise UserError("these detail-expert weights were saved for another network or LoRA configuration.")
        parameters = dict(self.named_parameters())
        with torch.no_grad():
            for name, value in state.items():
                parameters[name].copy_(value)

    def trainable_fraction(self) -> float:
        """Trainable parameters of the detail expert over the parameters of the semantic network."""
        total = sum(p.numel() for n, p in self.semantic.named_parameters() if "lora_" not in n)
        return sum(p.numel() for p in self.trainable_parameters()) / total

    def semantic_network(self) -> nn.Module:
        """A standalone copy of the semantic expert: the adapters removed, not merged."""
        if self.mode == "full":
            return copy.deepcopy(self.semantic).requires_grad_(False)
        return _strip_adapters(copy.deepcopy(self.semantic)).requires_grad_(False)

    def merged_detail_network(self) -> nn.Module:
        """A standalone network equal to the detail path: adapters merged into copies of their
        layers, Ψ in place (or the full copy). The semantic network is untouched."""
        if self.mode == "full":
            return copy.deepcopy(self.detail).requires_grad_(False)
        merged = copy.deepcopy(self._detail_view())
        for module in merged.modules():
            if isinstance(module, BaseTunerLayer):
                module._disable_adapters = False
                module.merge()
        return _strip_adapters(merged).requires_grad_(False)


def semantic_weight_sources(keys: Iterable[str]) -> dict[str, str]:
    """For a ``DualExpertNetwork``'s state-dict keys: each key that starts as a weight of the plain
    network it was built on → that weight's key in the plain network. The LoRA factors start fresh
    and have none; peft keeps each adapted layer as ``base_layer``; Ψ copies are keyed by their
    dotted path spelled with "/"."""
    sources = {}
    for key in keys:
        head, _, rest = key.partition(".")
        if head in ("semantic", "detail") and "lora_" not in rest:
            sources[key] = rest.replace(".base_layer.", ".")
        elif head == "psi":
            slot, _, tail = rest.partition(".")
            sources[key] = f"{_path(slot)}.{tail}"
        elif head == "psi_parameters":
            sources[key] = _path(rest)
    return sources


def _key(path: str) -> str:
    return path.replace(".", "/")


def _path(key: str) -> str:
    return key.replace("/", ".")


def _lookup(root: nn.Module, path: str) -> nn.Module | nn.Parameter | None:
    """The submodule or parameter at a dotted path, or None."""
    *parents, leaf = path.split(".")
    module = root
    for name in parents:
        module = module._modules.get(name)
        if module is None:
            return None
    return module._modules.get(leaf, module._parameters.get(leaf))


def _view_with(root: nn.Module, replacements: dict[str, nn.Module | nn.Parameter]) -> nn.Module:
    """A shallow copy of ``root`` in which each dotted path names its replacement instead; the
    modules along a nested path are shallow-copied too, all other children are shared."""
    view = copy.copy(root)
    modules, parameters = dict(root._modules), dict(root._parameters)
    nested: dict[str, dict[str, nn.Module | nn.Parameter]] = {}
    for path, replacement in replacements.items():
        head, _, rest = path.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = replacement
        elif isinstance(replacement, nn.Parameter):
            parameters[head] = replacement
        else:
            modules[head] = replacement
    for head, inner in nested.items():
        modules[head] = _view_with(root._modules[head], inner)
    view.__dict__["_modules"], view.__dict__["_parameters"] = modules, parameters
    return view


def _strip_adapters(network: nn.Module) -> nn.Module:
    """Replace every merged LoRA layer by its base layer, leaving a plain network."""
    for name, child in list(network.named_children()):
        if isinstance(child, BaseTunerLayer):
            setattr(network, name, child.get_base_layer())
        else:
            _strip_adapters(child)
    return network
