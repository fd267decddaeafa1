"""Checkpoints that do not depend on the working directory: a run trained with relative paths (the
detail expert's ``semantic_checkpoint``, the semantic expert's ``teacher``) loads from any folder, and
after its folder was moved together with what it names; a missing dependency is one sentence."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest

from dcm_lightning.checkpoints import read_checkpoint_metadata
from dcm_lightning.cli import main
from tests.conftest import dete_config, save_random_teacher
from tests.modules.test_consistency_modules import distill_config

PROMPT = "a plain red circle moving up"
SEMANTIC = "seme/checkpoints/epoch=0-step=2.ckpt"
DETAIL = "dete/checkpoints/epoch=0-step=2.ckpt"


@pytest.fixture(scope="module")
def relative_runs(tmp_path_factory) -> Path:
    """A teacher, a SemE run and a DetE run chained by relative paths, trained in ``work/``."""
    work = tmp_path_factory.mktemp("references") / "work"
    work.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(work)
        here = Path(".")
        save_random_teacher(here / "teacher")
        main(["fit", "--config", str(distill_config(here, "seme", Path("teacher"), 2))])
        main(["fit", "--config", str(dete_config(here, "dete", Path(SEMANTIC), 2))])  # one G + D batch
    return work


@contextlib.contextmanager
def _semantic_run_hidden(work: Path):
    """``work`` (the folder the runs were trained in) without its SemE run for a while."""
    hidden = work.parent / "hidden_seme"
    shutil.move(work / "seme", hidden)
    try:
        yield
    finally:
        shutil.move(hidden, work / "seme")


def test_the_runs_record_relative_paths_and_where_they_ran(relative_runs):
    detail = read_checkpoint_metadata(relative_runs / DETAIL)
    assert detail["hyper_parameters"]["semantic_checkpoint"] == SEMANTIC
    assert read_checkpoint_metadata(relative_runs / SEMANTIC)["hyper_parameters"]["teacher"] == "teacher"
    assert Path(detail["working_directory"]) == relative_runs


def test_a_detail_expert_samples_from_another_folder(relative_runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(["sample", "--checkpoint", str(relative_runs / DETAIL), "--prompt", PROMPT, "--out", "out"])
    assert (tmp_path / "out" / "samples.json").is_file()


def test_a_moved_run_folder_still_loads_what_it_names(relative_runs, tmp_path, monkeypatch):
    moved = tmp_path / "moved"
    shutil.copytree(relative_runs, moved)
    monkeypatch.chdir(tmp_path)
    with _semantic_run_hidden(relative_runs):  # the folder it was trained in no longer has it
        main(["sample", "--checkpoint", str(moved / DETAIL), "--prompt", PROMPT, "--out", "out"])
    assert (tmp_path / "out" / "samples.json").is_file()


def test_a_missing_semantic_checkpoint_is_one_sentence_naming_it_and_its_setting(
    relative_runs, tmp_path, monkeypatch, capsys
):
    moved = tmp_path / "moved"
    shutil.copytree(relative_runs / "dete", moved / "dete")  # without the SemE run it names
    monkeypatch.chdir(tmp_path)
    with _semantic_run_hidden(relative_runs), pytest.raises(SystemExit) as stop:
        main(["sample", "--checkpoint", str(moved / DETAIL), "--prompt", PROMPT, "--out", "out"])
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and f"semantic_checkpoint {SEMANTIC!r}" in error
    assert not (tmp_path / "out").exists()
