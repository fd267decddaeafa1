"""Cached teacher ODE trajectories: safetensors shards plus a manifest (docs/design.md §3).

Layout of a cache folder::

    manifest.json          what the cache is: teacher fingerprint, parameterization, shift, N, guidance
                           (scale, HunyuanVideo's embedded guidance, the CFG negative prompt),
                           kept grid indices, dtype, latent shape, prompt-list hash, shard size, and
                           per shard its sample range and sha256 (written last: a cache is complete
                           exactly when it exists)
    shard-00000.safetensors   states  (n, k, c, f, h, w) at the kept grid indices
                              text_embeds (n, l, d), text_mask (n, l), seeds (n,)
                              [text_pooled (n, p): teachers with a pooled text vector]
    shard-00000.json          the shard's record (checksum, range), written after the shard

Every write goes to a temporary name and is renamed into place, so an interrupted build leaves
only whole shards; rerunning it skips each shard whose record and checksum are valid and builds
the rest. Shards are assigned round-robin to ranks, so several processes build one cache.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm.auto import tqdm

from dcm_lightning.diffusion.phases import CLEAN_INDEX
from dcm_lightning.errors import UserError
from dcm_lightning.moving_shapes.datasets import PromptCase
from dcm_lightning.sampling import denoiser, ode_trajectory, seeded_noise
from dcm_lightning.teachers.base import VideoModel, module_fingerprint

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prompts_fingerprint(cases: Sequence[PromptCase]) -> str:
    digest = hashlib.sha256()
    for case in cases:
        digest.update(f"{case.prompt}\x00{case.seed}\n".encode())
    return digest.hexdigest()


def _temporary_path(path: Path) -> Path:
    """Where a file is written before it is renamed into place (hidden, per process)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def _removed_on_failure(temporary: Path):
    """A write that fails midway (a full disk) leaves no partial file behind."""
    try:
        yield
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _atomic_write_text(path: Path, text: str) -> None:
    temporary = _temporary_path(path)
    with _removed_on_failure(temporary):
        temporary.write_text(text)
        os.replace(temporary, path)


@dataclass(frozen=True)
class CacheSpec:
    """Everything a cache must match to be reused; a mismatch names the first differing field."""

    teacher_fingerprint: str
    parameterization: str
    shift: float | None  # None: a VP teacher, whose grid is its scheduler's timesteps
    num_steps: int
    guidance_scale: float
    kept_indices: tuple[int, ...]  # paper grid indices, descending; −1 is the clean sample
    dtype: str
    latent_shape: tuple[int, ...]
    prompts_fingerprint: str
    num_samples: int
    samples_per_shard: int
    # The rest of the teacher's guidance (None where it has none; caches written before these were
    # recorded read as None): HunyuanVideo's embedded guidance, and the negative prompt of a CFG teacher.
    embedded_guidance: float | None = None
    negative_prompt: str | None = None

    @property
    def num_shards(self) -> int:
        return -(-self.num_samples // self.samples_per_shard)

    def shard_range(self, shard: int) -> range:
        first = shard * self.samples_per_shard
        return range(first, min(first + self.samples_per_shard, self.num_samples))

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "kept_indices": list(self.kept_indices)}

    @classmethod
    def from_json(cls, values: dict) -> CacheSpec:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in values.items() if k in fields}
        return cls(
            **{**values, "kept_indices": tuple(values["kept_indices"]), "latent_shape": tuple(values["latent_shape"])}
        )

    def mismatch(self, other: CacheSpec) -> str | None:
        for field in dataclasses.fields(self):
            mine, theirs = getattr(self, field.name), getattr(other, field.name)
            if mine != theirs:
                return f"{field.name} is {theirs!r} in the cache but {mine!r} was requested"
        return None


def cache_spec(
    teacher: VideoModel,
    cases: Sequence[PromptCase],
    kept_indices: Sequence[int],
    dtype: str = "float32",
    samples_per_shard: int = 64,
) -> CacheSpec:
    """The spec of a cache of ``teacher``'s trajectories for ``cases``."""
    num_steps = teacher.num_steps
    kept = tuple(sorted(set(kept_indices), reverse=True))
    bad = [i for i in kept if not CLEAN_INDEX <= i < num_steps]
    if bad:
        raise UserError(f"kept grid indices {bad} are outside −1..{num_steps - 1} for a {num_steps}-step teacher.")
    if not hasattr(torch, dtype) or not isinstance(getattr(torch, dtype), torch.dtype):
        raise UserError(f"unknown cache dtype {dtype!r}; use float32, bfloat16 or float16.")
    return CacheSpec(
        teacher_fingerprint=module_fingerprint(teacher.network),
        parameterization=type(teacher.parameterization).__name__,
        shift=None if teacher.shift is None else float(teacher.shift),
        num_steps=num_steps,
        guidance_scale=float(teacher.guidance_scale),
        kept_indices=kept,
        dtype=dtype,
        latent_shape=tuple(teacher.latent_shape()),
        prompts_fingerprint=prompts_fingerprint(cases),
        num_samples=len(cases),
        samples_per_shard=samples_per_shard,
        embedded_guidance=getattr(teacher, "embedded_guidance", None),
        negative_prompt=_negative_prompt(teacher),
    )


def _negative_prompt(teacher: VideoModel) -> str | None:
    """The text of the unconditional branch a guided real teacher runs (None without CFG, or for the
    tiny teacher, whose unconditional branch is its empty prompt)."""
    settings = getattr(teacher, "settings", None)
    if settings is None or teacher.guidance_scale == 1.0:
        return None
    return settings.negative_prompt


class TrajectoryCache:
    """A cache folder: build (resumable, sharded across ranks), verify and read."""

    def __init__(self, folder: str | Path, spec: CacheSpec) -> None:
        self.folder = Path(folder)
        self.spec = spec
        self._manifest: dict | None = None  # read once; shard loads happen on the training hot path
        self._open_shards: dict[int, object] = {}  # verified shards, memory-mapped for sample reads

    def shard_path(self, shard: int) -> Path:
        return self.folder / f"shard-{shard:05d}.safetensors"

    def record_path(self, shard: int) -> Path:
        return self.folder / f"shard-{shard:05d}.json"

    # ---- state ---------------------------------------------------------------------------

    def is_complete(self) -> bool:
        """True when the manifest exists and matches the requested spec; refuses a foreign cache,
        complete or partial, naming the first setting that differs."""
        manifest = self.folder / MANIFEST
        if manifest.is_file():
            self._refuse_if_foreign(json.loads(manifest.read_text())["spec"], "trajectory cache")
            return True
        for record in sorted(self.folder.glob("shard-*.json"))[:1]:
            self._refuse_if_foreign(json.loads(record.read_text())["spec"], "partial trajectory cache")
        return False

    def _refuse_if_foreign(self, spec_json: dict, what: str) -> None:
        problem = self.spec.mismatch(CacheSpec.from_json(spec_json))
        if problem:
            raise UserError(f"the {what} at {self.folder} does not match this run: {problem}.")

    def valid_shard(self, shard: int) -> bool:
        record, path = self.record_path(shard), self.shard_path(shard)
        if not record.is_file() or not path.is_file():
            return False
        return json.loads(record.read_text())["sha256"] == sha256_file(path)

    # ---- building --------------------------------------------------------------------------

    def build(
        self,
        teacher: VideoModel,
        cases: Sequence[PromptCase],
        batch_size: int = 16,
        rank: int = 0,
        world_size: int = 1,
        progress: bool = True,
    ) -> list[int]:
        """Generate this rank's missing shards; returns the shards it built. Call ``finalize`` after
        every rank is done (rank 0)."""
        if prompts_fingerprint(cases) != self.spec.prompts_fingerprint:
            raise UserError("the prompt list differs from the one this cache spec was made for.")
        if self.is_complete():
            return []
        self.folder.mkdir(parents=True, exist_ok=True)
        mine = [s for s in range(rank, self.spec.num_shards, world_size) if not self.valid_shard(s)]
        positions = [self.spec.num_steps - 1 - i for i in self.spec.kept_indices]  # in teacher.sigmas()
        dtype = getattr(torch, self.spec.dtype)
        for shard in tqdm(mine, desc=f"trajectory cache (rank {rank})", unit="shard", disable=not progress):
            batches = []
            members = [cases[i] for i in self.spec.shard_range(shard)]
            for first in range(0, len(members), batch_size):
                batch = members[first : first + batch_size]
                noise = seeded_noise([c.seed for c in batch], teacher.latent_shape()).to(teacher.device)
                condition = teacher.encode_prompts([c.prompt for c in batch])
                denoise = denoiser(teacher, condition)
                trajectory = ode_trajectory(denoise, teacher.parameterization, noise, teacher.sigmas())
                # Hold only the kept states: a 720p Hunyuan state is ~15 MB per sample.
                states = {p: x.to(dtype) for p, x in enumerate(trajectory) if p in positions}
                kept = torch.stack([states[p] for p in positions], dim=1)  # b k c f h w
                batches.append((kept.to(dtype).cpu(), condition.to("cpu"), batch))
            self._write_shard(shard, batches)
        return mine

    def _write_shard(self, shard: int, batches: list) -> None:
        tensors = {
            "states": torch.cat([b[0] for b in batches]).contiguous(),
            "text_embeds": torch.cat([b[1].embeds for b in batches]).contiguous(),
            "text_mask": torch.cat([b[1].mask for b in batches]).to(torch.uint8).contiguous(),
            "seeds": torch.tensor([c.seed for b in batches for c in b[2]], dtype=torch.int64),
        }
        if batches[0][1].pooled is not None:  # HunyuanVideo's CLIP pooled projection
            tensors["text_pooled"] = torch.cat([b[1].pooled for b in batches]).contiguous()
        prompts = [c.prompt for b in batches for c in b[2]]
        path = self.shard_path(shard)
        temporary = _temporary_path(path)
        with _removed_on_failure(temporary):
            save_file(tensors, temporary, metadata={"prompts": json.dumps(prompts)})
            os.replace(temporary, path)
        sample_range = self.spec.shard_range(shard)
        record = {
            "spec": self.spec.to_json(),
            "sha256": sha256_file(path),
            "first": sample_range.start,
            "count": len(sample_range),
        }
        _atomic_write_text(self.record_path(shard), json.dumps(record, indent=1))

    def finalize(self) -> None:
        """Write the manifest once every shard is present and valid (rank 0, after a barrier)."""
        missing = [s for s in range(self.spec.num_shards) if not self.valid_shard(s)]
        if missing:
            raise UserError(f"the trajectory cache at {self.folder} is missing or has corrupt shards {missing}.")
        shards = {
            self.shard_path(s).name: json.loads(self.record_path(s).read_text()) for s in range(self.spec.num_shards)
        }
        manifest = {
            "format_version": FORMAT_VERSION,
            "spec": self.spec.to_json(),
            "shards": {name: {k: v for k, v in record.items() if k != "spec"} for name, record in shards.items()},
        }
        _atomic_write_text(self.folder / MANIFEST, json.dumps(manifest, indent=1))
        self._manifest = manifest

    # ---- reading ---------------------------------------------------------------------------

    def verify_shard(self, shard: int) -> Path:
        """Check a shard's checksum against the manifest; a mismatch names the shard and the fix."""
        if self._manifest is None:
            self._manifest = json.loads((self.folder / MANIFEST).read_text())
        path = self.shard_path(shard)
        expected = self._manifest["shards"][path.name]["sha256"]
        if not path.is_file() or sha256_file(path) != expected:
            raise UserError(
                f"cache shard {path} is missing or corrupt (checksum mismatch); rebuild just that shard with "
                f"`python -m dcm_lightning cache --config <your config> --rebuild-shard {shard}`."
            )
        return path

    def load_shard(self, shard: int) -> dict[str, Tensor]:
        """A shard's tensors, after checking its checksum against the manifest."""
        return load_file(self.verify_shard(shard))

    def read_sample(self, sample: int, indices: Sequence[int]) -> dict[str, Tensor]:
        """One trajectory's states at grid ``indices`` (k c f h w, float32) and its prompt embedding,
        read through a memory map: a shard is checksummed once, then only the needed states are read."""
        shard, row = divmod(sample, self.spec.samples_per_shard)
        if shard not in self._open_shards:
            self._open_shards[shard] = safe_open(self.verify_shard(shard), framework="pt")
        handle = self._open_shards[shard]
        states = handle.get_slice("states")
        positions = [self.spec.kept_indices.index(i) for i in indices]
        sample = {
            "states": torch.cat([states[row : row + 1, p] for p in positions]).float(),
            "text_embeds": handle.get_slice("text_embeds")[row].float(),
            "text_mask": handle.get_slice("text_mask")[row].bool(),
        }
        if "text_pooled" in list(handle.keys()):  # safetensors handles have no __contains__
            sample["text_pooled"] = handle.get_slice("text_pooled")[row].float()
        return sample

    def invalidate_shard(self, shard: int) -> None:
        """Forget one shard (and the manifest) so that the next build regenerates only it."""
        for path in (self.folder / MANIFEST, self.record_path(shard), self.shard_path(shard)):
            path.unlink(missing_ok=True)
        self._manifest = None
        self._open_shards.pop(shard, None)
