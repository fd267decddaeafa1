"""Reading what ``fit`` writes: a Lightning ``.ckpt`` file or a sharded (FSDP2) checkpoint folder.

File IO only; what a checkpoint becomes — a teacher (``teachers.loading``) or a ready sampler
(``generation``) — is decided above. Nothing is unpickled beyond tensors and plain containers
(``torch.load(weights_only=True)``).

A ``.ckpt`` file is one ``torch.save`` archive. A sharded folder is what Lightning's
``ModelParallelStrategy`` writes: a torch distributed checkpoint (DCP: ``.metadata`` and one
``__<rank>_0.distcp`` per rank) holding ``{"state_dict": module weights, "optimizer_0": …, "optimizer_1": …}``
— DCP names an entry by its path joined with dots, so module weight ``k`` is ``state_dict.k`` — plus
``meta.pt``, a plain ``torch.save`` of everything else (hyper_parameters, ``MODULE_KEY``,
``teacher_fingerprint``, global_step, loops, callbacks' states).

Production readers take only what they need: ``read_checkpoint_metadata`` (no tensor of weights or
optimizer), ``read_module_state`` / ``load_module_state`` (module weights, optionally under one key
prefix; never an optimizer state). Under FSDP2, ``load_module_state`` into a sharded module reads on
each rank only the stored chunks of its own shards. ``read_lightning_checkpoint`` reads everything,
optimizer states included: for tests and comparison scripts.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import Tensor

from dcm_lightning.distributed import is_sharded_checkpoint
from dcm_lightning.errors import UserError

MODULE_KEY = "dcm_lightning_module"  # the class that wrote a checkpoint, by its name in dcm_lightning.modules
WORKING_DIRECTORY_KEY = "working_directory"  # the folder ``fit`` ran in: where its relative paths start
STATE_KEY = "state_dict"  # the module's weights, in a file and in a sharded folder alike
SHARDED_METADATA = "meta.pt"  # a sharded folder's non-tensor entries (Lightning's ``_METADATA_FILENAME``)


def read_checkpoint_metadata(path: str | Path) -> dict:
    """Everything in a ``fit`` checkpoint but the module's weights and the optimizer states:
    hyper_parameters, ``MODULE_KEY``, teacher_fingerprint, global_step, loops, callbacks' states …

    Reads no weight: of a sharded folder only ``meta.pt``; of a ``.ckpt`` file the pickle, with the
    file's tensors memory-mapped, so their bytes are never paged in."""
    path = Path(path)
    if is_sharded_checkpoint(path):
        return _torch_load(path / SHARDED_METADATA)
    checkpoint = _load_file(path)
    return {k: v for k, v in checkpoint.items() if k not in (STATE_KEY, "optimizer_states")}


def read_module_state(path: str | Path, prefix: str = "") -> dict[str, Tensor]:
    """The module weights (``state_dict``) whose keys start with ``prefix``, as full tensors on CPU,
    keyed without the prefix. Nothing else is read: no optimizer state, no weight outside ``prefix``
    (a sharded folder's DCP read requests only those entries; a ``.ckpt`` file's tensors are
    memory-mapped, so only those are paged in). One process, no process group."""
    path = Path(path)
    if not is_sharded_checkpoint(path):
        return {k.removeprefix(prefix): v for k, v in _load_file(path)[STATE_KEY].items() if k.startswith(prefix)}
    stored = _stored_module_tensors(path, prefix)
    state = {name: torch.empty(entry.size, dtype=entry.properties.dtype) for name, entry in stored.items()}
    load_module_state(path, state, prefix)
    return state


def load_module_state(path: str | Path, targets: Mapping[str, Tensor], prefix: str = "") -> None:
    """Fill ``targets`` in place: ``targets[name]`` ← module weight ``prefix + name``. The checkpoint's
    weights under ``prefix`` must be exactly the targets, of the same shapes (UserError otherwise);
    nothing else is read, no optimizer state.

    A target is a plain tensor or a ``DTensor`` (a parameter of a module sharded with ``fully_shard``).
    From a sharded folder with DTensor targets, every rank of the default process group calls this
    together (DCP plans the read collectively) and each reads only the stored chunks that overlap its
    own shards — with the layout the checkpoint was written in, exactly its own ``.distcp`` chunks.
    With plain tensors only, the calling process reads the full tensors by itself, without any
    process group. A ``.ckpt`` file is memory-mapped and each target copied from its full tensor
    (into a DTensor: its local shard only)."""
    path = Path(path)
    if is_sharded_checkpoint(path):
        _load_sharded(path, targets, prefix)
        return
    stored = {k.removeprefix(prefix): v for k, v in _load_file(path)[STATE_KEY].items() if k.startswith(prefix)}
    _check_targets(path, {k: v.shape for k, v in stored.items()}, targets)
    with torch.no_grad():
        for name, target in targets.items():
            target.copy_(_as_target(stored[name], target))


def read_lightning_checkpoint(path: str | Path) -> dict:
    """A whole ``fit`` checkpoint, optimizer states included: a ``.ckpt`` file as saved, or a sharded
    folder consolidated into one dict of full CPU tensors (``state_dict``, ``optimizer_0`` …, and
    ``meta.pt``'s entries) in one process. For tests and comparisons; loading a model reads less
    (``read_checkpoint_metadata``, ``read_module_state``, ``load_module_state``)."""
    path = Path(path)
    if is_sharded_checkpoint(path):
        return {**_read_sharded_whole(path), **_torch_load(path / SHARDED_METADATA)}
    return _load_file(path, mmap=False)


def is_module_checkpoint(path: str | Path | None, *names: str) -> bool:
    """Whether ``path`` is a ``fit`` checkpoint written by one of the modules ``names`` (any, if none);
    reads the checkpoint's metadata only."""
    if path is None or not (Path(path).is_file() or is_sharded_checkpoint(path)):
        return False
    written_by = read_checkpoint_metadata(path).get(MODULE_KEY)
    return written_by is not None and (not names or written_by in names)


def resolve_reference(recorded: str, checkpoint: str | Path, metadata: Mapping, setting: str) -> str:
    """A path a checkpoint's hyperparameters recorded (``setting``, e.g. the detail expert's
    ``semantic_checkpoint``), found from wherever the checkpoint is loaded: as recorded if absolute;
    else relative to the folder ``fit`` ran in (``WORKING_DIRECTORY_KEY``) if it is still there, then to
    the checkpoint's own folders nearest first (a run folder moved together with what it points to:
    ``/new/runs/dete_tiny/checkpoints/last.ckpt`` finds ``runs/seme_tiny/…`` under ``/new``), then to
    the current folder. A path found nowhere is one sentence naming it and ``setting``."""
    path = Path(recorded)
    if path.is_absolute():
        candidates = [path]
    else:
        checkpoint = Path(checkpoint).absolute()
        working = metadata.get(WORKING_DIRECTORY_KEY)
        roots = [Path(working)] if working else []
        candidates = [root / path for root in [*roots, *checkpoint.parents, Path.cwd()]]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    raise UserError(
        f"{setting} {recorded!r} of checkpoint {checkpoint} is missing (looked in the folder it was trained "
        f"from, beside the checkpoint's folders and here); put it back or beside the run folder."
    )


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``.ckpt`` writer, made atomic: the file is written beside its name and renamed into
    place, so a write cut off midway (a kill, a full disk) never leaves a partial checkpoint under a
    checkpoint's name — and a failed write leaves no partial file at all. (Sharded FSDP2 folders are
    written by torch distributed checkpoint, not through this; ``last.ckpt`` moves to a folder only
    once it is complete.)"""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.partial")
        try:
            torch.save(checkpoint, temporary)
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


# ---- .ckpt files -----------------------------------------------------------------------------------


def _load_file(path: Path, mmap: bool = True) -> dict:
    if not path.is_file():
        raise UserError(f"checkpoint {str(path)!r} does not exist.")
    return _torch_load(path, mmap=mmap)


def _torch_load(path: Path, mmap: bool = False) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as error:  # a truncated or foreign file: say which, not a traceback
        raise UserError(f"{path} is not a readable Lightning checkpoint ({type(error).__name__}).") from None


def _as_target(full: Tensor, target: Tensor) -> Tensor:
    """``full`` laid out as ``target``: itself, or for a DTensor the local shard of it (no communication)."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if isinstance(target, DTensor):
        return distribute_tensor(full, target.device_mesh, target.placements, src_data_rank=None)
    return full


# ---- sharded folders (torch.distributed.checkpoint) -------------------------------------------------


def _stored_module_tensors(path: Path, prefix: str) -> dict:
    """Module weight name (without ``prefix``) → its DCP ``TensorStorageMetadata`` (global size, dtype)."""
    import torch.distributed.checkpoint as dcp

    head = f"{STATE_KEY}.{prefix}"
    stored = {}
    for fqn, entry in dcp.FileSystemReader(path).read_metadata().state_dict_metadata.items():
        if fqn.startswith(head):
            if not isinstance(entry, dcp.TensorStorageMetadata):
                raise UserError(f"{path} holds a non-tensor module entry {fqn!r}; only weights are read.")
            stored[fqn.removeprefix(head)] = entry
    return stored


def _load_sharded(path: Path, targets: Mapping[str, Tensor], prefix: str) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.tensor import DTensor

    stored = _stored_module_tensors(path, prefix)
    _check_targets(path, {name: entry.size for name, entry in stored.items()}, targets)
    sharded = any(isinstance(t, DTensor) for t in targets.values())
    # DCP reads exactly the entries of the target dict, each target's own chunks; nested as saved
    # ({"state_dict": {key: …}}), so the entry names match ("state_dict.<key>").
    request = {STATE_KEY: {prefix + name: target for name, target in targets.items()}}
    _dcp_load(request, dcp.FileSystemReader(path), no_dist=not sharded)


def _dcp_load(state: dict, reader, planner=None, no_dist: bool = False) -> None:
    """``dcp.load``; a deliberate single-process read without DCP's warning that it is one."""
    import torch.distributed.checkpoint as dcp

    with warnings.catch_warnings():
        if no_dist:
            warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        dcp.load(state, storage_reader=reader, planner=planner, no_dist=no_dist)


def _check_targets(path: Path, stored: Mapping[str, torch.Size], targets: Mapping[str, Tensor]) -> None:
    missing, unexpected = sorted(targets.keys() - stored.keys()), sorted(stored.keys() - targets.keys())
    mismatched = sorted(k for k in targets.keys() & stored.keys() if tuple(targets[k].shape) != tuple(stored[k]))
    if missing or unexpected or mismatched:
        detail = "; ".join(
            f"{what}: {names[:3]}{' …' if len(names) > 3 else ''}"
            for what, names in (("missing", missing), ("unexpected", unexpected), ("other shapes", mismatched))
            if names
        )
        raise UserError(f"{path} holds the weights of another architecture than this version's ({detail}).")


def _read_sharded_whole(path: Path) -> dict:
    """Every DCP entry of a sharded folder as full CPU tensors and plain values, nested as saved."""
    import torch.distributed.checkpoint as dcp

    class WeightsOnlyLoadPlanner(dcp.DefaultLoadPlanner):
        """Loads a flat target dict (entry name → tensor, or None for a bytes entry) as it is; bytes
        entries are unpickled with ``weights_only`` (the default planner unpickles them unrestricted)."""

        def load_bytes(self, read_item, value: io.BytesIO) -> None:
            self.state_dict[read_item.dest_index.fqn] = torch.load(value, weights_only=True)

    reader = dcp.FileSystemReader(path)
    metadata = reader.read_metadata()
    flat = {
        fqn: torch.empty(entry.size, dtype=entry.properties.dtype)
        if isinstance(entry, dcp.TensorStorageMetadata)
        else None  # a bytes entry (an optimizer's param_groups values)
        for fqn, entry in metadata.state_dict_metadata.items()
    }
    planner = WeightsOnlyLoadPlanner(flatten_state_dict=False, flatten_sharded_tensors=False)
    _dcp_load(flat, reader, planner=planner, no_dist=True)
    nested: dict = {}
    for fqn, value in flat.items():  # planner_data: each entry's path in the saved nesting
        _set_nested(nested, (metadata.planner_data or {}).get(fqn, (fqn,)), value)
    return nested


def _set_nested(root: dict, keys: tuple, value) -> None:
    """``root[k0][k1]…[kn] = value``, creating dicts (and lists, where a key is an index) on the way."""
    container = root
    for key, following in zip(keys[:-1], keys[1:], strict=True):
        if isinstance(container, list):
            container.extend([None] * (key + 1 - len(container)))
        if (container[key] if isinstance(container, list) else container.get(key)) is None:
            container[key] = [] if isinstance(following, int) else {}
        container = container[key]
    if isinstance(container, list):
        container.extend([None] * (keys[-1] + 1 - len(container)))
    container[keys[-1]] = value
