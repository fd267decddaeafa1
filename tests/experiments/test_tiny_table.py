"""The table scripts' bookkeeping (experiments/tiny_table.py): stage configs, aggregation, the markdown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dcm_lightning.lightning_cli import compose_documented
from experiments import tiny_table
from experiments.kappa.run_kappa import DEFAULT_KAPPA, stages_and_rows

REPO = Path(__file__).resolve().parents[2]


def _row(total: float) -> dict:
    scores = {"total": total, "quality": total + 0.01, "semantic": total - 0.01}
    return {"minibench": scores, "psnr": 20.0 + total, "seconds_per_video": 0.5}


def test_aggregate_gives_mean_and_sample_std_over_seeds():
    results = {"rows": {"A/seed0": _row(0.5), "A/seed1": _row(0.7), "B/seed0": _row(0.9), "B/seed1": _row(0.9)}}
    rows = tiny_table.aggregate(results, ["A", "B"], [0, 1])
    assert rows["A"]["total"]["mean"] == pytest.approx(0.6)
    assert rows["A"]["total"]["std"] == pytest.approx(0.1414213, rel=1e-5)  # sample std, n − 1
    assert rows["B"]["total"]["std"] == 0.0
    assert rows["A"]["seeds"]["1"]["total"] == 0.7
    assert rows["A"]["psnr_vs_teacher"] == pytest.approx(20.6)


@pytest.mark.parametrize("table", ["ablation_od_pe_tc", "compare", "kappa", "psi"])
def test_committed_results_md_is_the_markdown_of_results_json(table):
    folder = REPO / "experiments" / table
    if not (folder / "results.json").exists():
        pytest.skip(f"experiments/{table} has no results yet")
    record = json.loads((folder / "results.json").read_text())
    latency = table == "compare"  # the table with seconds per video
    teacher = {"minibench": record["teacher_50"]}
    if latency:
        teacher["seconds_per_video"] = record["teacher_50_seconds_per_video"]
    expected = tiny_table.markdown(record["rows"], teacher, record["paper_vbench"], latency)
    assert _words((folder / "results.md").read_text()) == _words(expected)


def _words(table: str) -> list[str]:
    return table.split()  # the numbers and labels, not the column padding


def test_markdown_without_paper_numbers_has_no_paper_columns():
    rows = tiny_table.aggregate({"rows": {"A/seed0": _row(0.5)}}, ["A"], [0])
    table = tiny_table.markdown(rows, {"minibench": _row(0.9)["minibench"]}, {})
    assert "paper" not in table
    assert all(line.count("|") == 5 for line in table.splitlines())


def test_stage_config_changes_only_seed_steps_paths_and_overrides(tmp_path):
    stage = tiny_table.Stage("dete_tiny", tiny_table.NO_GAN, "seme_tc", 2)
    path, run = tiny_table.stage_config(stage, "dete_pe", seed=3, steps=10, root=tmp_path)
    written = yaml.safe_load(path.read_text())
    shipped = compose_documented(REPO / "configs" / "dete_tiny.yaml", REPO)
    assert run == tmp_path / "seed3" / "dete_pe"
    assert written["seed_everything"] == 3 and written["trainer"]["max_steps"] == 20
    assert written["data"]["init_args"]["seed"] == 3
    model = written["model"]["init_args"]
    assert model["semantic_checkpoint"] == str(tmp_path / "seed3" / "seme_tc" / "final.ckpt")
    shipped = shipped["model"]["init_args"]
    assert model["adversarial"] == {**shipped["adversarial"], "weight": 0.0, "feature_matching_weight": 0.0}
    assert model["adversarial"]["real_source"] == "teacher", "a group override keeps the keys it does not name"
    for key, value in shipped.items():
        if key not in ("adversarial", "semantic_checkpoint"):
            assert model[key] == value


def test_the_kappa_table_trains_each_kappa_and_reuses_the_default_dcm_runs():
    stages, rows = stages_and_rows([29, 33, DEFAULT_KAPPA], suggested=33)
    assert DEFAULT_KAPPA == 37  # configs/seme_tiny.yaml
    assert stages["seme_tc_k29"].overrides == {"boundary_index": 29}
    assert stages["dcm_k33"].semantic == "seme_tc_k33" and "dcm_k37" not in stages
    assert rows["DCM-4 κ=37 (default)"] == ("dcm", 4)
    assert rows["DCM-8 κ=33 (suggested)"] == ("dcm_k33", 8)
    assert list(rows)[:3] == ["DCM-4 κ=37 (default)", "DCM-4 κ=33 (suggested)", "DCM-4 κ=29"]


def test_the_baseline_sweep_trains_each_rate_and_reuses_the_comparisons_run_at_the_shipped_rate():
    from experiments.compare.run_sweep import shipped_rate, sweep

    lcm, pcm = shipped_rate("lcm_tiny"), shipped_rate("pcm_tiny")
    other = 3e-4  # a rate neither config ships
    stages, rows = sweep([other, lcm, pcm])
    assert stages[f"lcm_lr{other:g}"] == tiny_table.Stage("lcm_tiny", {"learning_rate": other}, None, 2)  # DCM's budget
    assert rows[f"LCM-4 lr {lcm:g}"] == ("lcm", 4)  # the name `make compare` trains it under
    assert rows[f"PCM-4 lr {pcm:g}"] == ("pcm", 4)
    expected = {"lcm", "pcm", f"lcm_lr{other:g}", f"pcm_lr{other:g}"}
    if lcm != pcm:  # each baseline also trains the other's shipped rate under its own name
        expected |= {f"lcm_lr{pcm:g}", f"pcm_lr{lcm:g}"}
    assert set(stages) == expected


def test_the_gap_table_adds_one_change_per_row_to_dcms_default_stages():
    from experiments.gap.run_gap import stages_and_rows

    stages, rows = stages_and_rows(["length", "capacity"])
    assert stages["dcm_x4"] == tiny_table.Stage("dete_tiny", {}, "seme_tc_x4", 8)  # 4·S batches: 8·S steps
    assert stages["dcm_r64"].semantic == "seme_tc" and stages["dcm"] == tiny_table.DCM_STAGES["dcm"]
    assert rows == {"DCM-4 (default)": ("dcm", 4), "DCM-4 length": ("dcm_x4", 4), "DCM-4 capacity": ("dcm_r64", 4)}
