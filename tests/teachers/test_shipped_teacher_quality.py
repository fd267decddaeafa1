"""The shipped tiny teacher meets issue 2's bar at 50 steps (slow: samples 128 videos)."""

import json

import pytest

from dcm_lightning.cli import main


@pytest.mark.slow
def test_shipped_teacher_meets_the_accuracy_bar(tmp_path):
    main(
        ["minibench", "--model", "teacher-50=shipped:50", "--num-prompts", "64", "--seeds-per-prompt", "2"]
        + ["--latency-repeats", "1", "--out", str(tmp_path)]
    )
    results = json.loads((tmp_path / "results.json").read_text())
    row = results["rows"]["teacher-50"]["minibench"]
    assert results["suite"]["videos"] == 128 and results["rows"]["teacher-50"]["steps"] == 50
    assert row["object_class"] >= 0.90
    assert row["color"] >= 0.90
    assert row["motion_direction"] >= 0.90
    assert row["texture"] >= 0.80
