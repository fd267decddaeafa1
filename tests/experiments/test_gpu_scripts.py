"""The prepared GPU scripts of issue 19 run end to end on a CPU at tiny size, so that the GPU's few
minutes are not spent on a typo: the step breakdown's parts add up to its step, and the block stack
reports both depths."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(module: str, *args: str) -> None:
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_step_breakdown_times_every_part_of_both_stages(tmp_path):
    out = tmp_path / "breakdown.json"
    run(
        "experiments.gpu.step_breakdown",
        "--tiny",
        "--steps",
        "1",
        "--warmup",
        "1",
        "--variants",
        "baseline",
        "fused_adamw",
        "--out",
        str(out),
    )
    results = json.loads(out.read_text())
    assert [(r["stage"], r["variant"]) for r in results] == [
        ("seme", "baseline"),
        ("seme", "fused_adamw"),
        ("dete", "baseline"),
        ("dete", "fused_adamw"),
    ]
    for result in results:
        assert "error" not in result, result
        parts = {"data", "target", "student_forward", "student_backward", "optimizer"}
        if result["stage"] == "dete":
            parts |= {"teacher_forward", "discriminator"}
        assert set(result["share"]) == parts and abs(sum(result["share"].values()) - 1) < 1e-3
        assert sum(result["part_seconds"].values()) <= result["step_seconds"] * 1.01 + 1e-3


def test_the_block_stack_measures_two_depths_and_their_difference(tmp_path):
    out = tmp_path / "blocks.json"
    run("experiments.gpu.hunyuan_blocks", "--tiny", "--steps", "1", "--split", "2", "--out", str(out))
    result = json.loads(out.read_text())
    assert [s["blocks_each_kind"] for s in result["stacks"]] == [2, 4]
    assert result["video_tokens"] == 5 * 4 * 2  # 5 frames × 4 rows × (8 / 2 / 2) columns
    assert result["stacks"][1]["parameters"] > result["stacks"][0]["parameters"]
