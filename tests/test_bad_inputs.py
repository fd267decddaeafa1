"""Bad input, counted: a table of mistyped configs, wrong values, missing and corrupt files and
unwritable places, each handed to the real CLI (in this process) and each answered with exit status 2
and one sentence on stderr naming the problem, with nothing written half.

"Nothing written half": the files under the case's own folder and the shared runs (a teacher, a SemE
and a DetE run, their cache) are the same before and after, but for what the case itself set up.
With ``DCM_RELIABILITY_RESULTS`` set, each case appends its row for experiments/reliability/results.md.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml

from dcm_lightning.cli import main

REPO = Path(__file__).resolve().parents[1]
RESULTS = os.environ.get("DCM_RELIABILITY_RESULTS") and Path(os.environ["DCM_RELIABILITY_RESULTS"]).absolute()
PROMPT = "a plain red circle moving up"


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # config value, config key, file, place, command
    argv: list[str]  # {root}: the shared runs, {tmp}: the case's folder, {repo}
    expect: str  # in the sentence
    setup: Callable[[Path, Path], None] | None = field(default=None, compare=False)
    fault: Callable[[pytest.MonkeyPatch], None] | None = field(default=None, compare=False)  # e.g. a full disk


def _write(relative: str, text: str | bytes) -> Callable[[Path, Path], None]:
    def setup(root: Path, tmp: Path) -> None:
        path = tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)

    return setup


def _truncated_copy(source: str, relative: str) -> Callable[[Path, Path], None]:
    def setup(root: Path, tmp: Path) -> None:
        data = (root / source).read_bytes()
        (tmp / relative).write_bytes(data[: len(data) // 3])

    return setup


def _copy_tree_without(source: str, relative: str, missing: str) -> Callable[[Path, Path], None]:
    def setup(root: Path, tmp: Path) -> None:
        import shutil

        shutil.copytree(root / source, tmp / relative)
        target = tmp / relative / missing
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    return setup


def _own_config(root: Path, tmp: Path, base: str) -> dict:
    """A shared config whose run (logs, checkpoints) goes to the case's folder."""
    config = yaml.safe_load((root / base).read_text())
    run = tmp / base.removesuffix(".yaml")
    config["trainer"]["default_root_dir"] = str(run)
    config["trainer"]["logger"]["init_args"]["save_dir"] = str(run)
    config["trainer"]["callbacks"][0]["init_args"]["dirpath"] = str(run / "checkpoints")
    return config


def _config_with(key_path: list[str], value, relative: str = "bad.yaml", base: str = "seme.yaml"):
    """The shared SemE (or DetE, PCM) config with one entry set."""

    def setup(root: Path, tmp: Path) -> None:
        config = _own_config(root, tmp, base)
        node = config
        for key in key_path[:-1]:
            node = node[key]
        node[key_path[-1]] = value.format(tmp=tmp) if isinstance(value, str) else value
        (tmp / relative).write_text(yaml.safe_dump(config))

    return setup


SEME = ["fit", "--config", "{tmp}/seme.yaml"]
DETE = ["fit", "--config", "{tmp}/dete.yaml"]
SAMPLE = ["sample", "--prompt", PROMPT, "--out", "{tmp}/out"]
MODEL = ["model", "init_args"]

SEME_CKPT = "seme/checkpoints/epoch=0-step=2.ckpt"


def _corrupt_teacher(name: str, data: bytes | None) -> Callable[[Path, Path], None]:
    """A copy of the shared teacher with ``name`` replaced by ``data`` (None: its first third)."""

    def setup(root: Path, tmp: Path) -> None:
        import shutil

        shutil.copytree(root / "teacher", tmp / "teacher")
        path = tmp / "teacher" / name
        path.write_bytes(data if data is not None else path.read_bytes()[: path.stat().st_size // 3])

    return setup


def _other_teachers_checkpoint(root: Path, tmp: Path) -> None:
    """The shared SemE checkpoint, its teacher folder since replaced by another random teacher."""
    from tests.conftest import save_random_teacher

    save_random_teacher(tmp / "teacher", seed=1)
    checkpoint = torch.load(root / SEME_CKPT, weights_only=True)
    checkpoint["hyper_parameters"]["teacher"] = str(tmp / "teacher")
    torch.save(checkpoint, tmp / "other.ckpt")


def _under_a_file(root: Path, tmp: Path) -> None:
    config = _own_config(root, tmp, "seme.yaml")
    config["trainer"]["default_root_dir"] = config["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp / "file/run")
    config["trainer"]["callbacks"][0]["init_args"]["dirpath"] = str(tmp / "file/run/checkpoints")
    (tmp / "bad.yaml").write_text(yaml.safe_dump(config))


def _half_then_full(path, data: bytes = b"\0" * 64) -> None:
    Path(path).write_bytes(data)  # what fitted before the disk filled up
    raise OSError(errno.ENOSPC, "No space left on device", str(path))


def _disk_full_on_cache_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    from dcm_lightning.data import trajectory_cache

    monkeypatch.setattr(trajectory_cache, "save_file", lambda tensors, path, metadata=None: _half_then_full(path))


def _disk_full_on_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    from dcm_lightning import checkpoints

    monkeypatch.setattr(checkpoints.torch, "save", lambda obj, path, *a, **k: _half_then_full(path))


def _corrupt_cache_shard(root: Path, tmp: Path) -> None:
    """A copy of the shared (complete) cache whose first shard lost its last two thirds."""
    import shutil

    shutil.copytree(root / "cache", tmp / "cache")
    shard = sorted((tmp / "cache").glob("shard-*.safetensors"))[0]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 3])
    _config_with(["data", "init_args", "cache_dir"], "{tmp}/cache")(root, tmp)


def _corrupt_latent_part(root: Path, tmp: Path) -> None:
    """Pre-encoded latents whose one part is not a safetensors file."""
    _write("latents/part-00000.safetensors", b"not a safetensors file")(root, tmp)
    config = _own_config(root, tmp, "seme.yaml")
    config["data"]["init_args"].update(source="latents", latents_dir=str(tmp / "latents"))
    (tmp / "bad.yaml").write_text(yaml.safe_dump(config))


def _other_grid_teacher(root: Path, tmp: Path) -> None:
    """The shared teacher's weights on a 12-step grid, with the shared cache (made on 10 steps)."""
    import json as json_module
    import shutil

    shutil.copytree(root / "teacher", tmp / "teacher")
    config_path = tmp / "teacher" / "config.json"
    config = json_module.loads(config_path.read_text())
    config["num_steps"] = 12
    config_path.write_text(json_module.dumps(config))
    _config_with([*MODEL, "teacher"], str(tmp / "teacher"))(root, tmp)


CASES = [
    # ---- config values ------------------------------------------------------------------------
    Case(
        "kappa above the grid", "config value", [*SEME, "--model.init_args.boundary_index", "60"], "κ = 60 is outside"
    ),
    Case("kappa negative", "config value", [*SEME, "--model.init_args.boundary_index=-3"], "κ = -3 is outside"),
    Case("negative TC lag", "config value", [*SEME, "--model.init_args.tc_lag=-1"], "tc_lag must be at least 1"),
    Case("negative TC weight", "config value", [*SEME, "--model.init_args.tc_weight=-0.5"], "tc_weight must be"),
    Case("negative learning rate", "config value", [*SEME, "--model.init_args.learning_rate=-1e-5"], "learning_rate"),
    Case("zero learning rate", "config value", [*SEME, "--model.init_args.learning_rate", "0"], "learning_rate must"),
    Case("negative weight decay", "config value", [*SEME, "--model.init_args.weight_decay=-1"], "weight_decay must"),
    Case("negative Huber c", "config value", [*SEME, "--model.init_args.huber_c=-1"], "huber_c must"),
    Case("EMA decay of 1.5", "config value", [*SEME, "--model.init_args.target_ema_decay", "1.5"], "target_ema_decay"),
    Case(
        "unknown target network", "config value", [*SEME, "--model.init_args.target_network", "emma"], "target_network"
    ),
    Case("zero sampling steps", "config value", [*SEME, "--model.init_args.val_steps", "0"], "val_steps must"),
    Case("zero batch size", "config value", [*SEME, "--data.init_args.batch_size", "0"], "batch_size must"),
    Case("negative trajectories", "config value", [*SEME, "--data.init_args.num_trajectories=-8"], "num_trajectories"),
    Case("unknown data source", "config value", [*SEME, "--data.init_args.source", "web"], "source"),
    Case(
        "more phases than grid steps",
        "config value",
        ["fit", "--config", "{tmp}/bad.yaml"],
        "500 phases do not fit",
        _config_with([*MODEL, "num_phases"], 500, base="pcm.yaml"),
    ),
    Case("LoRA rank zero", "config value", [*DETE, "--model.init_args.detail.lora_rank", "0"], "detail.lora_rank must"),
    Case("unknown detail mode", "config value", [*DETE, "--model.init_args.detail.mode", "half"], "mode"),
    Case(
        "negative GAN weight", "config value", [*DETE, "--model.init_args.adversarial.weight=-1"], "adversarial.weight"
    ),
    Case("unknown GAN loss", "config value", [*DETE, "--model.init_args.adversarial.loss", "wasserstein"], "loss"),
    Case(
        "discriminator every 0th block",
        "config value",
        [*DETE, "--model.init_args.discriminator.feature_every", "0"],
        "feature_every must be at least 1",
    ),
    Case(
        "EMA real without the EMA target",
        "config value",
        [*DETE, "--model.init_args.adversarial.real_source", "ema"],
        "needs target_network: ema",
    ),
    # ---- config keys and types -----------------------------------------------------------------
    Case("misspelled model key", "config key", [*SEME, "--model.init_args.learnig_rate", "1e-5"], "'learning_rate'?"),
    Case(
        "misspelled key in a config file",
        "config key",
        ["fit", "--config", "{tmp}/bad.yaml"],
        "did you mean 'boundary_index'?",
        _config_with([*MODEL, "boundary_indx"], 30),
    ),
    Case(
        "misspelled trainer key",
        "config key",
        ["fit", "--config", "{tmp}/bad.yaml"],
        "did you mean 'max_steps'?",
        _config_with(["trainer", "max_stpes"], 3),
    ),
    Case("misspelled data key", "config key", [*SEME, "--data.init_args.batch_sze", "2"], "did you mean 'batch_size'?"),
    Case("misspelled nested key", "config key", [*DETE, "--model.init_args.detail.lora_rnk", "2"], "'lora_rank'?"),
    Case("a word for a number", "config key", [*SEME, "--model.init_args.learning_rate", "fast"], "learning_rate"),
    Case("a word for max_steps", "config key", [*SEME, "--trainer.max_steps", "ten"], "trainer.max_steps"),
    Case(
        "misspelled module class",
        "config key",
        ["fit", "--config", "{tmp}/bad.yaml"],
        "did you mean 'SemEModule'?",
        _config_with(["model", "class_path"], "dcm_lightning.modules.SemEModul"),
    ),
    Case("config file missing", "file", ["fit", "--config", "{tmp}/nowhere.yaml"], "nowhere.yaml"),
    Case(
        "config file not YAML",
        "file",
        ["fit", "--config", "{tmp}/bad.yaml"],
        "not valid YAML",
        _write("bad.yaml", "model: [x\n"),
    ),
    Case(
        "experiment file without its preset",
        "config key",
        ["fit", "--config", "{repo}/configs/seme_tiny.yaml"],
        "preset",
    ),
    # ---- files: checkpoints, caches, teachers, pipeline folders ---------------------------------
    Case("resume checkpoint missing", "file", [*SEME, "--ckpt_path", "{tmp}/gone.ckpt"], "gone.ckpt"),
    Case(
        "resume checkpoint truncated",
        "file",
        [*SEME, "--ckpt_path", "{tmp}/cut.ckpt"],
        "cut.ckpt is not a readable",
        _truncated_copy("seme/checkpoints/epoch=0-step=2.ckpt", "cut.ckpt"),
    ),
    Case("resume checkpoint is text", "file", [*SEME, "--ckpt_path", "{tmp}/a.ckpt"], "a.ckpt", _write("a.ckpt", "hi")),
    Case(
        "resume from another module's checkpoint",
        "file",
        [*SEME, "--ckpt_path", "{root}/dete/checkpoints/epoch=0-step=4.ckpt"],
        "was written by DetEModule",
    ),
    Case(
        "semantic checkpoint missing",
        "file",
        [*DETE, "--model.init_args.semantic_checkpoint", "{tmp}/g.ckpt"],
        "g.ckpt",
    ),
    Case(
        "semantic checkpoint truncated",
        "file",
        [*DETE, "--model.init_args.semantic_checkpoint", "{tmp}/cut.ckpt"],
        "cut.ckpt is not a readable",
        _truncated_copy("seme/checkpoints/epoch=0-step=2.ckpt", "cut.ckpt"),
    ),
    Case(
        "semantic checkpoint of another module",
        "file",
        [*DETE, "--model.init_args.semantic_checkpoint", "{root}/dete/checkpoints/epoch=0-step=4.ckpt"],
        "not a SemEModule checkpoint",
    ),
    Case(
        "semantic checkpoint of another teacher",
        "file",
        [*DETE, "--model.init_args.semantic_checkpoint", "{tmp}/other.ckpt"],
        "another teacher",
        _other_teachers_checkpoint,
    ),
    Case("teacher folder missing", "file", [*SEME, "--model.init_args.teacher", "{tmp}/no_teacher"], "no_teacher"),
    Case(
        "teacher folder without weights",
        "file",
        [*SEME, "--model.init_args.teacher", "{tmp}/teacher"],
        "needs config.json and model.safetensors",
        _copy_tree_without("teacher", "teacher", "model.safetensors"),
    ),
    Case(
        "teacher config corrupt",
        "file",
        [*SEME, "--model.init_args.teacher", "{tmp}/teacher"],
        "not a readable tiny-teacher folder",
        _corrupt_teacher("config.json", b"{not json"),
    ),
    Case(
        "teacher weights truncated",
        "file",
        [*SEME, "--model.init_args.teacher", "{tmp}/teacher"],
        "not a readable tiny-teacher folder",
        _corrupt_teacher("model.safetensors", None),
    ),
    Case(
        "pipeline folder without model_index.json",
        "file",
        [*SEME, "--model.init_args.teacher", '{{"path": "{tmp}/pipe", "num_frames": 5, "height": 16, "width": 16}}'],
        "no model_index.json",
        _write("pipe/transformer/config.json", "{}"),
    ),
    Case(
        "cache of another teacher",
        "file",
        ["fit", "--config", "{tmp}/bad.yaml"],
        "does not match this run: teacher_fingerprint",
        _config_with([*MODEL, "teacher"], None),
    ),
    Case(
        "cache of another grid",
        "file",
        ["fit", "--config", "{tmp}/bad.yaml"],
        "does not match this run",
        _other_grid_teacher,
    ),
    Case(
        "cache shard corrupt",
        "file",
        ["fit", "--config", "{tmp}/bad.yaml"],
        "is missing or corrupt (checksum mismatch)",
        _corrupt_cache_shard,
    ),
    Case(
        "latent part corrupt",
        "file",
        ["fit", "--config", "{tmp}/bad.yaml"],
        "is not readable",
        _corrupt_latent_part,
    ),
    Case(
        "full disk while the cache is written",
        "place",
        ["fit", "--config", "{tmp}/bad.yaml"],
        "No space left on device",
        _config_with(["data", "init_args", "cache_dir"], "{tmp}/new_cache"),
        _disk_full_on_cache_shards,
    ),
    Case(
        "full disk while a checkpoint is written",
        "place",
        [*SEME, "--trainer.max_steps", "2"],  # the shared config checkpoints every 2 steps
        "No space left on device",
        fault=_disk_full_on_checkpoints,
    ),
    # ---- tools and places ----------------------------------------------------------------------
    Case("sample: checkpoint missing", "file", [*SAMPLE, "--checkpoint", "{tmp}/gone.ckpt"], "gone.ckpt"),
    Case(
        "sample: checkpoint truncated",
        "file",
        [*SAMPLE, "--checkpoint", "{tmp}/cut.ckpt"],
        "cut.ckpt is not a readable",
        _truncated_copy("dete/checkpoints/epoch=0-step=4.ckpt", "cut.ckpt"),
    ),
    Case("sample: zero steps", "command", [*SAMPLE, "--checkpoint", "{root}/" + SEME_CKPT, "--steps", "0"], "--steps"),
    Case(
        "sample: guidance for a student",
        "command",
        [*SAMPLE, "--checkpoint", "{root}/" + SEME_CKPT, "--guidance-scale", "5"],
        "guidance is distilled",
    ),
    Case(
        "sample: output folder under a file",
        "place",
        [*SAMPLE, "--checkpoint", "{root}/" + SEME_CKPT, "--out", "{tmp}/file/sub"],
        "Not a directory",
        _write("file", "x"),
    ),
    Case(
        "export: output folder under a file",
        "place",
        ["export", "--checkpoint", "{root}/" + SEME_CKPT, "--out", "{tmp}/file/sub"],
        "Not a directory",
        _write("file", "x"),
    ),
    Case(
        "fit: run folder under a file",
        "place",
        ["fit", "--config", "{tmp}/bad.yaml"],
        "Not a directory",
        lambda root, tmp: (_write("file", "x")(root, tmp), _under_a_file(root, tmp)),
    ),
    Case("unknown command", "command", ["distil", "--config", "x.yaml"], "unknown command 'distil'"),
    Case("misspelled tool option", "command", ["sample", "--checkpont", "x.ckpt", "--prompt", PROMPT], "--checkpont"),
    Case("test subcommand", "command", ["test", "--config", "{tmp}/seme.yaml"], "test"),
]


def _files(*folders: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for f in folders for p in f.rglob("*") if p.is_file()}


def _half_written(before: dict, after: dict, world: Path) -> list[str]:
    """Files of the shared runs that changed, and new files that are partial or stand for a model:
    a temporary file, a checkpoint, a safetensors file (a complete log or config record is fine)."""
    changed = [k for k, v in after.items() if k in before and before[k] != v]
    new = [
        k
        for k in after.keys() - before.keys()
        if ".tmp" in k or ".partial" in k or k.endswith((".ckpt", ".safetensors"))
    ]
    return sorted(
        changed + [k for k in new if not k.startswith(str(world))] + [k for k in new if k.startswith(str(world))]
    )


@pytest.fixture(scope="module")
def world(chained) -> Path:
    """The shared runs: a random teacher, a SemE run, a DetE run and their cache (``chained``), plus a
    PCM config on the same teacher and cache."""
    from tests.modules.test_consistency_modules import distill_config

    root, _ = chained
    if not (root / "pcm.yaml").exists():
        distill_config(root, "pcm", root / "teacher", 2, source="pcm_tiny")
    return root


def _record(case: Case, refused: bool, message: str, lost: int) -> None:
    out = RESULTS
    if out:
        row = {"bad_input": case.name, "kind": case.kind, "refused_cleanly": refused, "message": message, "lost": lost}
        with open(out, "a") as file:
            file.write(json.dumps(row) + "\n")


def test_the_table_has_at_least_forty_bad_inputs():
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_bad_input_is_one_sentence_with_exit_status_2_and_nothing_written(case, world, tmp_path, capsys, monkeypatch):
    work = tmp_path / "case"
    work.mkdir()
    for base in ("seme.yaml", "dete.yaml"):
        (work / base).write_text(yaml.safe_dump(_own_config(world, work, base)))
    if case.setup is not None:
        case.setup(world, work)
    if case.fault is not None:
        case.fault(monkeypatch)
    before = _files(world, work)
    monkeypatch.chdir(work)
    with pytest.raises(SystemExit) as stop:
        main([arg.format(root=world, tmp=work, repo=REPO) for arg in case.argv])
    written = _half_written(before, _files(world, work), world)
    error = capsys.readouterr().err
    lines = [line for line in error.strip().splitlines() if line.strip()]
    message = lines[-1] if lines else ""
    one_sentence = message.startswith("error:") or ": error: " in message  # ours, or argparse's for a tool option
    refused = stop.value.code == 2 and one_sentence and "Traceback" not in error
    _record(case, bool(refused and case.expect in message and not written), message, len(written))
    assert refused, error[-3000:]
    assert case.expect in message
    assert not written, sorted(written)
