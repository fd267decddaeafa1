"""VBenchProgress: inside `fit`, every n steps the student generates a small VBench subset with VBench's
names and the round is scored by VBench's evaluator (a stand-in here: the real one cannot be imported on
this machine), logged as vbench/<dimension>; without the evaluator the dimensions are named, not 0."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
import yaml

from dcm_lightning.cli import main
from dcm_lightning.data.vbench_prompts import load_full_info, select_prompts, vbench_info_path, vbench_jobs
from tests.callbacks.test_training_samples import logged_scalars, samples_config
from tests.tiny_diffusers import write_latents, write_pipeline_folder

DIMENSIONS = ["color", "temporal_flickering"]
INFO = str(vbench_info_path())


def _config(tmp_path: Path, folder: Path) -> Path:
    path = samples_config(tmp_path, "wan", folder, 2, samples=False)
    config = yaml.safe_load(path.read_text())
    # the prompt list given as a file: the stand-in below replaces the vbench package itself
    callback = {"dimensions": DIMENSIONS, "prompts_per_dimension": 1, "every_n_steps": 2, "full_info": INFO}
    config["trainer"]["callbacks"].append(
        {"class_path": "dcm_lightning.callbacks.VBenchProgress", "init_args": callback}
    )
    path.write_text(yaml.safe_dump(config))
    return path


class FakeVBench:
    """Stands in for vbench.VBench: scores a dimension by the number of videos it finds."""

    def __init__(self, device, full_info_dir, output_path):
        self.output = Path(output_path)
        self.output.mkdir(parents=True, exist_ok=True)

    def evaluate(self, videos_path, name, dimension_list, mode):
        videos = len(list(Path(videos_path).glob("*.mp4")))
        results = {dimension_list[0]: [videos / 10, []]}
        (self.output / f"{name}_eval_results.json").write_text(json.dumps(results))


def test_the_student_is_scored_on_a_vbench_subset_while_it_trains(tmp_path, monkeypatch):
    folder = write_pipeline_folder("wan", tmp_path / "pipeline", full=True)
    write_latents("wan", tmp_path / "latents")
    monkeypatch.setitem(sys.modules, "vbench", types.SimpleNamespace(VBench=FakeVBench))
    main(["fit", "--config", str(_config(tmp_path, folder))])
    round_folder = tmp_path / "seme" / "vbench" / "step-2"
    jobs = vbench_jobs(select_prompts(load_full_info(Path(INFO)), DIMENSIONS, 1), 1, 0)
    assert sorted(p.name for p in round_folder.glob("*.mp4")) == sorted(job.name for job in jobs)  # VBench's names
    for dimension in ("color", "temporal flickering"):
        assert logged_scalars(tmp_path / "seme", 0, f"vbench/{dimension}") == [2]


def test_without_vbenchs_evaluator_the_dimensions_are_named_once_and_nothing_is_logged(tmp_path, monkeypatch):
    folder = write_pipeline_folder("wan", tmp_path / "pipeline", full=True)
    write_latents("wan", tmp_path / "latents")
    monkeypatch.setitem(sys.modules, "vbench", None)  # import vbench raises ImportError
    with pytest.warns(UserWarning, match=r"could not score 2 dimension\(s\) \(color: VBench's evaluator cannot be"):
        main(["fit", "--config", str(_config(tmp_path, folder))])
    assert logged_scalars(tmp_path / "seme", 0, "vbench/color") == []
