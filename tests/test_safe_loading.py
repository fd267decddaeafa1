"""No code runs from a file: every checkpoint is read with ``torch.load(weights_only=True)`` (or as
safetensors), nothing is unpickled otherwise, and no diffusers/transformers load trusts remote code.

Two checks: the source of the package, the experiments and the scripts holds no unsafe load (an AST
scan that a new ``torch.load`` without ``weights_only=True`` fails), and a booby-trapped checkpoint
— a pickle whose loading would write a file — handed to every entry point that reads checkpoints
writes nothing and is refused in one sentence.
"""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest
import torch

from dcm_lightning.cli import main

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("dcm_lightning", "experiments", "scripts", "docs")


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def _keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _unsafe_loads(path: Path) -> list[str]:
    found = []
    for call, name in _calls(path):
        where = f"{path.relative_to(REPO)}:{call.lineno}"
        weights_only = _keyword(call, "weights_only")
        if name.endswith("torch.load") and not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
            found.append(f"{where} torch.load without weights_only=True")
        if name.split(".")[-1] in ("load", "loads", "Unpickler") and name.split(".")[0] in ("pickle", "dill"):
            found.append(f"{where} {name}")
        remote = _keyword(call, "trust_remote_code")
        if remote is not None and not (isinstance(remote, ast.Constant) and remote.value is False):
            found.append(f"{where} trust_remote_code other than False")
    return found


def test_no_source_file_loads_a_pickle_or_trusts_remote_code():
    files = [p for folder in SCANNED for p in (REPO / folder).rglob("*.py")]
    assert len(files) > 50
    unsafe = [finding for path in files for finding in _unsafe_loads(path)]
    assert unsafe == []


def test_the_scan_finds_an_unsafe_load(tmp_path):
    probe = REPO / "dcm_lightning" / "_probe_unsafe.py"  # inside the repo: the scan names files relative to it
    probe.write_text(
        "import pickle\nimport torch\n"
        "torch.load('x.ckpt')\ntorch.load('x.ckpt', weights_only=False)\npickle.load(open('x', 'rb'))\n"
        "f(trust_remote_code=True)\ntorch.load('x.ckpt', weights_only=True)\n"
    )
    try:
        assert [f.split(" ", 1)[1] for f in _unsafe_loads(probe)] == [
            "torch.load without weights_only=True",
            "torch.load without weights_only=True",
            "pickle.load",
            "trust_remote_code other than False",
        ]
    finally:
        probe.unlink()


class _Trap:
    """Unpickling this writes a file: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


@pytest.fixture
def trapped(tmp_path) -> tuple[Path, Path]:
    marker, checkpoint = tmp_path / "code_ran.txt", tmp_path / "trapped.ckpt"
    state = {"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": {"x": _Trap(marker)}, "global_step": 0}
    torch.save(state, checkpoint, pickle_module=pickle)
    return checkpoint, marker


@pytest.mark.parametrize(
    "command",
    [
        ["sample", "--checkpoint", "{ckpt}", "--prompt", "a plain red circle moving up", "--out", "{tmp}/out"],
        ["export", "--checkpoint", "{ckpt}", "--out", "{tmp}/exported"],
        [
            "fit",
            "--config",
            "configs/presets/tiny_cpu.yaml",
            "--config",
            "configs/seme_tiny.yaml",
            "--ckpt_path",
            "{ckpt}",
            "--trainer.default_root_dir",
            "{tmp}/run",
            "--data.init_args.cache_dir",
            "{tmp}/cache",
            "--data.init_args.num_trajectories",
            "4",
            "--data.init_args.samples_per_shard",
            "4",
        ],
    ],
    ids=["sample", "export", "fit-resume"],
)
def test_a_booby_trapped_checkpoint_runs_no_code_and_is_refused(trapped, tmp_path, monkeypatch, capsys, command):
    checkpoint, marker = trapped
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as stop:
        main([arg.format(ckpt=checkpoint, tmp=tmp_path) for arg in command])
    assert stop.value.code == 2
    assert not marker.exists()
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert str(checkpoint) in error or checkpoint.name in error
