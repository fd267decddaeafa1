"""The shipped tiny teacher meets issue 2's bar at 50 steps (slow: samples 128 videos)."""

import json

import pytest

from dcm_lightning.cli import main


@pytest.mark.slow
def test_shipped_teacher_meets_the_accuracy_bar(tmp_path):
    out = tmp_path / "eval.json"
    main(["teacher-eval", "--num-prompts", "64", "--seeds-per-prompt", "2", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["n_videos"] == 128 and report["steps"] == 50
    assert report["shape_acc"] >= 0.90
    assert report["color_acc"] >= 0.90
    assert report["direction_acc"] >= 0.90
    assert report["texture_acc"] >= 0.80
