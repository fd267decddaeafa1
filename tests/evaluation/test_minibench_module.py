"""``validate --config`` with MiniBenchModule: several models, one table, TensorBoard scalars."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dcm_lightning.cli import main
from dcm_lightning.errors import UserError
from dcm_lightning.evaluation import EvaluatedModel, MiniBenchModule
from dcm_lightning.lightning_cli import compose_documented

REPO = Path(__file__).resolve().parents[2]


def eval_config(tmp_path: Path, models: list[dict]) -> Path:
    config = compose_documented(REPO / "configs" / "eval_tiny.yaml", REPO)
    config["trainer"].update(default_root_dir=str(tmp_path / "tb"), enable_progress_bar=False, callbacks=[])
    config["model"]["init_args"].update(
        models=models, reference="teacher-10", out_dir=str(tmp_path / "out"), latency_repeats=1
    )
    config["data"]["init_args"].update(num_prompts=3, seeds_per_prompt=1, batch_size=2)
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_validate_writes_the_minibench_table_for_every_model(chained, tmp_path, capsys):
    root, semantic = chained
    dete = next((root / "dete" / "checkpoints").glob("*step=4.ckpt"))
    models = [
        {"label": "seme-4", "checkpoint": str(semantic), "steps": 4},
        {"label": "teacher-10", "checkpoint": str(root / "teacher")},
        {"label": "dcm-4", "checkpoint": str(dete), "steps": 4},
        {"label": "dcm-6", "checkpoint": str(dete), "steps": 6},
    ]
    main(["validate", "--config", str(eval_config(tmp_path, models))])
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    rows = results["rows"]
    assert list(rows) == ["teacher-10", "seme-4", "dcm-4", "dcm-6"], "the reference first, then in config order"
    assert results["suite"]["videos"] == 3
    teacher, dcm = rows["teacher-10"], rows["dcm-4"]
    assert teacher["nfe_per_video"] == 20 and dcm["nfe_per_video"] == 4 and rows["dcm-6"]["nfe_per_video"] == 6
    assert teacher["psnr"] is None and teacher["speedup"] == 1.0
    assert dcm["nfe_bound"] == 5.0
    assert dcm["nfe_bound_fraction"] == pytest.approx(dcm["speedup"] / 5.0)
    for row in rows.values():
        assert 0.0 <= row["minibench"]["total"] <= 1.0 and row["seconds_per_video"] > 0
    assert 0.0 < dcm["ssim"] <= 1.0 and dcm["psnr"] > 0
    assert results["data"]["minibench"]["object_class"] == 1.0, "clean renders are the ceiling row"
    table = (tmp_path / "out" / "results.md").read_text()
    for column in ("Total", "Quality", "Semantic", "PSNR", "SSIM", "latency", "speedup", "NFE-bound fraction"):
        assert column in table
    assert "| dcm-6 |" in table and "| data (clean renders) |" in table
    assert "| dcm-4 |" in capsys.readouterr().out

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((tmp_path / "tb").rglob("events.out.tfevents*")).parent))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"minibench/dcm-4/total", "minibench/teacher-10/quality", "minibench/dcm-6/ssim"} <= set(tags)


def test_bad_model_lists_are_refused_in_one_sentence(tmp_path):
    with pytest.raises(UserError, match="unique"):
        MiniBenchModule([EvaluatedModel("a"), EvaluatedModel("a")], reference="a")
    with pytest.raises(UserError, match="reference 'teacher-50' is none"):
        MiniBenchModule([EvaluatedModel("a")])
    module = MiniBenchModule([EvaluatedModel("teacher-50", str(tmp_path / "missing.ckpt"))])
    with pytest.raises(UserError, match="missing.ckpt"):
        module.setup("validate")
