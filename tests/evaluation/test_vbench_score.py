"""vbench-score against hand-computed cases of VBench's official formula."""

from __future__ import annotations

import json

import pytest

from dcm_lightning.cli import main
from dcm_lightning.errors import UserError
from dcm_lightning.evaluation.vbench_score import NORMALIZATION_BOUNDS, read_vbench_results, vbench_scores

AT_MIN = {name: low for name, (low, high) in NORMALIZATION_BOUNDS.items()}
AT_MAX = {name: high for name, (low, high) in NORMALIZATION_BOUNDS.items()}


def test_every_dimension_at_its_bounds_scores_zero_and_one():
    assert vbench_scores(AT_MIN) == pytest.approx({"total": 0.0, "quality": 0.0, "semantic": 0.0})
    assert vbench_scores(AT_MAX) == pytest.approx({"total": 1.0, "quality": 1.0, "semantic": 1.0})


def test_dynamic_degree_counts_half():
    # Quality weights sum to 6 · 1 + 0.5 = 6.5; dynamic degree 1.0 contributes 1 · 0.5.
    scores = vbench_scores({**AT_MIN, "dynamic degree": 1.0})
    assert scores["quality"] == pytest.approx(0.5 / 6.5)
    assert scores["semantic"] == 0.0
    assert scores["total"] == pytest.approx(4 * (0.5 / 6.5) / 5)


def test_a_mixed_case_by_hand():
    # subject consistency halfway between 0.1462 and 1.0; scene halfway to its max 0.8222.
    raw = {**AT_MIN, "subject consistency": 0.1462 + 0.5 * (1.0 - 0.1462), "scene": 0.4111}
    quality, semantic = 0.5 / 6.5, 0.5 / 9
    assert vbench_scores(raw) == pytest.approx(
        {"quality": quality, "semantic": semantic, "total": (4 * quality + semantic) / 5}
    )


def test_a_missing_dimension_is_named_not_zeroed():
    raw = dict(AT_MAX)
    del raw["human action"]
    with pytest.raises(UserError, match="human action"):
        vbench_scores(raw)


def test_the_command_reads_vbench_result_files(tmp_path, capsys):
    names = list(NORMALIZATION_BOUNDS)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "run_eval_results.json").write_text(
        json.dumps({n.replace(" ", "_"): [AT_MAX[n], [{"video_path": "x.mp4"}]] for n in names[:8]})
    )
    (tmp_path / "b_eval_results.json").write_text(json.dumps({n.replace(" ", "_"): [AT_MAX[n], []] for n in names[8:]}))
    assert len(read_vbench_results([tmp_path])) == 16
    main(["vbench-score", str(tmp_path / "a"), str(tmp_path / "b_eval_results.json"), "--json"])
    assert json.loads(capsys.readouterr().out) == pytest.approx({"total": 1.0, "quality": 1.0, "semantic": 1.0})
    with pytest.raises(SystemExit):
        main(["vbench-score", str(tmp_path / "a")])
    assert "lack the dimensions" in capsys.readouterr().err
