"""`validate --config configs/vbench_tiny.yaml` on 2 gloo processes: every (prompt, index) video of the
subset written once with VBench's name, each rank its share; killed midway and rerun, it completes the
set without regenerating what was complete; the scoring names the dimensions VBench cannot run here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from dcm_lightning.data.loaders import RankShare
from dcm_lightning.data.vbench_datamodule import VBenchDataModule
from dcm_lightning.lightning_cli import compose_documented

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path) -> Path:
    values = compose_documented(REPO / "configs" / "vbench_tiny.yaml", REPO)
    out = tmp_path / "videos"
    strategy = {  # as the GPU preset's, on 2 CPU processes (gloo)
        "class_path": "lightning.pytorch.strategies.ModelParallelStrategy",
        "init_args": {"data_parallel_size": 2, "tensor_parallel_size": 1},
    }
    values["trainer"].update(default_root_dir=str(tmp_path), devices=2, accelerator="cpu", strategy=strategy)
    values["model"]["init_args"].update(out_dir=str(out))
    # the shipped teacher twice (no trained student needed here): 50 steps, and 4
    values["model"]["init_args"]["models"] = [
        {"label": "teacher-50", "checkpoint": None, "steps": 50},
        {"label": "teacher-4", "checkpoint": None, "steps": 4},
    ]
    values["data"]["init_args"]["batch_size"] = 1
    path = tmp_path / "vbench.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def _start(config: Path, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    preset = REPO / "configs" / "presets" / "tiny_cpu.yaml"
    command = [sys.executable, "-m", "dcm_lightning", "validate", "--config", str(preset), "--config", str(config)]
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def _videos(folder: Path) -> dict[str, tuple[int, int]]:
    """Complete videos (VBench's names, not write_mp4's temporary folders) → (inode, mtime)."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.glob("*.mp4")}


def test_two_ranks_write_every_video_once_and_a_killed_run_resumes_without_regenerating(tmp_path):
    config = _config(tmp_path)
    expected = {job.name for job in VBenchDataModule(["temporal_flickering", "color"], 3, 5).jobs}
    assert len(expected) == 30  # 2 dimensions × 3 prompts × 5 videos (the prompts differ here)
    teacher = tmp_path / "videos" / "teacher-50"

    first = _start(config, tmp_path)  # killed once a few of the slow row's videos are written
    deadline = time.monotonic() + 600
    while len(_videos(teacher)) < 4 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    before = _videos(teacher)
    assert 4 <= len(before) < len(expected), f"the kill should land midway ({len(before)} videos)"

    second = _start(config, tmp_path)
    output, _ = second.communicate(timeout=900)
    assert second.returncode == 0, output[-3000:]
    for label in ("teacher-50", "teacher-4"):
        folder = tmp_path / "videos" / label
        assert set(_videos(folder)) == expected, label  # every name once, none extra
        assert not list(folder.glob(".partial-*")), "no temporary files left"
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["videos"] == 30 and manifest["steps"] == int(label.split("-")[1])
        results = json.loads((folder / "results.json").read_text())
        assert results["dimensions"] == {} and results["official"] is None
        assert set(results["not_run"]) == {"temporal flickering", "color"}  # named, never scored 0
        assert all("cannot be imported" in reason for reason in results["not_run"].values())
    after = _videos(teacher)
    assert {name: after[name] for name in before} == before, "a video complete before the rerun was rewritten"
    assert "| teacher-4 | — | — | — |" in (tmp_path / "videos" / "results.md").read_text()


def test_each_rank_takes_every_other_job_and_none_is_padded():
    jobs = range(7)
    shares = [list(RankShare(jobs, num_replicas=3, rank=r, shuffle=False)) for r in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert [len(RankShare(jobs, num_replicas=3, rank=r, shuffle=False)) for r in range(3)] == [3, 2, 2]
