"""VBench mode: prompt subsets from the vbench package's list, VBench's file names, a complete
manifest, and the driver that hands the folder to VBench's own evaluator."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import imageio.v3 as iio
import pytest

from dcm_lightning.cli import main
from dcm_lightning.data import vbench_prompts
from dcm_lightning.data.vbench_prompts import load_full_info, select_prompts, video_name
from dcm_lightning.errors import UserError

MANIFEST_KEYS = {
    "prompt_source",
    "dimensions",
    "videos_per_prompt",
    "naming",
    "seeds",
    "fps",
    "frames",
    "resolution",
    "steps",
    "guidance_scale",
    "prompt_augmentation",
    "model",
    "prompts",
    "num_prompts",
}


def test_subsets_follow_the_files_order_and_merge_shared_prompts():
    info = [
        {"prompt_en": "a cat", "dimension": ["color", "scene"]},
        {"prompt_en": "a dog", "dimension": ["scene"]},
        {"prompt_en": "a red car", "dimension": ["color"]},
    ]
    chosen = select_prompts(info, ["color", "scene"], 2)
    assert [(p.prompt, p.dimensions) for p in chosen] == [
        ("a cat", ["color", "scene"]),
        ("a red car", ["color"]),
        ("a dog", ["scene"]),
    ]
    with pytest.raises(UserError, match="unknown VBench dimension.*colour"):
        select_prompts(info, ["colour"], 1)
    assert video_name("a cat", 3) == "a cat-3.mp4"


def test_a_missing_vbench_package_is_one_clear_sentence(monkeypatch):
    monkeypatch.setattr(vbench_prompts.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="pip install --no-deps vbench"):
        vbench_prompts.vbench_info_path()


@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    out = tmp_path_factory.mktemp("vbench") / "videos"
    main(
        ["vbench-generate", "--dimensions", "color", "scene", "--prompts-per-dimension", "2", "--steps", "2"]
        + ["--out", str(out)]
    )
    return out


def test_a_two_by_two_subset_of_the_tiny_teacher_is_named_for_vbench_with_a_complete_manifest(subset):
    info = load_full_info()
    expected = [e["prompt_en"] for e in info if "color" in e["dimension"]][:2]
    expected += [e["prompt_en"] for e in info if "scene" in e["dimension"]][:2]
    files = sorted(p.name for p in subset.glob("*.mp4"))
    assert files == sorted(f"{prompt}-{i}.mp4" for prompt in expected for i in range(5))
    manifest = json.loads((subset / "manifest.json").read_text())
    assert set(manifest) >= MANIFEST_KEYS
    assert manifest["prompt_source"]["file"].endswith("VBench_full_info.json")
    assert len(manifest["prompt_source"]["sha256"]) == 64
    assert manifest["steps"] == 2 and manifest["frames"] == 8 and manifest["prompt_augmentation"] is False
    assert manifest["resolution"]["height"] == 128 and manifest["guidance_scale"] == 4.0
    seeds = [v["seed"] for p in manifest["prompts"] for v in p["videos"]]
    assert len(set(seeds)) == 20
    frames = iio.imread(subset / files[0], plugin="pyav")
    assert frames.shape == (8, 128, 128, 3)
    assert not list(subset.glob(".partial-*")), "no partial files left behind"


def test_augmented_prompts_generate_from_the_long_text_but_keep_vbenchs_names(tmp_path):
    info = load_full_info()
    prompt = next(e["prompt_en"] for e in info if "color" in e["dimension"])
    augmented = tmp_path / "augmented.json"
    augmented.write_text(json.dumps({prompt: f"{prompt}, a striped red circle moving left"}))
    out = tmp_path / "videos"
    main(
        ["vbench-generate", "--dimensions", "color", "--prompts-per-dimension", "1", "--steps", "1"]
        + ["--videos-per-prompt", "1", "--augmented-prompts", str(augmented), "--out", str(out)]
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["prompt_augmentation"] is True
    assert manifest["prompts"][0]["generated_from"].endswith("moving left")
    assert (out / f"{prompt}-0.mp4").exists()


def test_the_driver_runs_vbenchs_evaluator_in_standard_mode_one_dimension_at_a_time(
    subset, tmp_path, monkeypatch, capsys
):
    """A stand-in for VBench's evaluator (the real one needs torchvision and model weights, which this
    machine cannot have): one call per dimension, and a dimension VBench fails on is named, not 0."""
    calls = []

    class FakeVBench:
        def __init__(self, device, full_info_dir, output_path):
            self.output = Path(output_path)
            calls.append(("init", device, full_info_dir))

        def evaluate(self, videos_path, name, dimension_list, mode):
            calls.append(("evaluate", videos_path, name, dimension_list, mode))
            if dimension_list == ["scene"]:
                raise FileNotFoundError("tag2text weights not found")
            (self.output / f"{name}_eval_results.json").write_text(json.dumps({"color": [0.75, []]}))

    monkeypatch.setitem(sys.modules, "vbench", types.SimpleNamespace(VBench=FakeVBench))
    main(["vbench-evaluate", "--videos", str(subset), "--out", str(tmp_path / "results"), "--device", "cpu"])
    evaluated = [c[1:] for c in calls if c[0] == "evaluate"]
    assert evaluated == [
        (str(subset), "dcm-color", ["color"], "vbench_standard"),
        (str(subset), "dcm-scene", ["scene"], "vbench_standard"),
    ]
    assert calls[0][2].endswith("VBench_full_info.json")
    results = json.loads((subset / "results.json").read_text())
    assert results["dimensions"] == {"color": 0.75}
    assert results["not_run"] == {"scene": "FileNotFoundError: tag2text weights not found"}
    assert results["official"] is None and "subject consistency" in results["missing_for_total"]
    printed = capsys.readouterr().out
    assert "| color | 0.7500 |" in printed and "| scene | not run: FileNotFoundError" in printed


def test_the_driver_without_vbenchs_evaluator_says_what_to_install(subset, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "vbench", None)  # import vbench raises ImportError
    with pytest.raises(SystemExit) as exit_info:
        main(["vbench-evaluate", "--videos", str(subset)])
    assert exit_info.value.code == 2
    assert "install vbench with its dependencies" in capsys.readouterr().err


def test_validate_logs_each_models_vbench_scores_and_writes_its_results(tmp_path, monkeypatch):
    """The VBench module in one process with a stand-in evaluator: scalars vbench/<label>/<dimension>,
    each row's results.json, and the table over the rows."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from dcm_lightning.data.vbench_datamodule import VBenchDataModule
    from dcm_lightning.evaluation import EvaluatedModel, VBenchModule

    info = str(vbench_prompts.vbench_info_path())

    class FakeVBench:
        def __init__(self, device, full_info_dir, output_path):
            self.output = Path(output_path)
            self.output.mkdir(parents=True, exist_ok=True)

        def evaluate(self, videos_path, name, dimension_list, mode):
            (self.output / f"{name}_eval_results.json").write_text(json.dumps({dimension_list[0]: [0.5, []]}))

    data = VBenchDataModule(["color"], 1, 2, full_info=info)
    module = VBenchModule([EvaluatedModel("t-1", None, 1)], str(tmp_path / "videos"), evaluator_device="cpu")
    monkeypatch.setitem(sys.modules, "vbench", types.SimpleNamespace(VBench=FakeVBench))
    logger = CSVLogger(tmp_path, name="csv")
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=logger, enable_progress_bar=False)
    trainer.validate(module, datamodule=data, verbose=False)
    results = json.loads((tmp_path / "videos" / "t-1" / "results.json").read_text())
    assert results["dimensions"] == {"color": 0.5} and results["not_run"] == {}
    assert "vbench/t-1/color" in (Path(logger.log_dir) / "metrics.csv").read_text().splitlines()[0]
    assert "| t-1 | — | — | — | 0.5000 |" in (tmp_path / "videos" / "results.md").read_text()
