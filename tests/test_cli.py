"""What a user sees at the command line: help for every command, one-sentence errors, exit status."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from dcm_lightning.cli import LIGHTNING_COMMANDS, _tools, main
from dcm_lightning.lightning_cli import documented_command

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    # From an empty folder, so that the runs/ folders a config names are not made inside the repository.
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "dcm_lightning", *args]
        return subprocess.run(command, capture_output=True, text=True, cwd=folder)


def test_top_level_help_lists_every_command(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    for command in (*LIGHTNING_COMMANDS, *_tools()):
        assert f"  {command}" in out


@pytest.mark.parametrize("command", [*LIGHTNING_COMMANDS, *_tools()])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage" in capsys.readouterr().out.lower()


def _assert_one_sentence_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert fragment in result.stderr


def _shipped(name: str) -> list[str]:
    """The --config arguments of a shipped experiment file's documented command (its preset first)."""
    _, paths = documented_command(REPO / "configs" / f"{name}.yaml")
    return [arg for path in paths for arg in ("--config", str(REPO / path))]


def test_a_prompt_word_outside_the_vocabulary_is_one_sentence():
    result = _run("sample", "--prompt", "a striped purple triangle moving left")
    _assert_one_sentence_error(result, "'purple' is not in the MovingShapes vocabulary")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_missing_checkpoint_is_one_sentence():
    result = _run("sample", "--checkpoint", "no/such/teacher", "--prompt", "a plain red circle moving up")
    _assert_one_sentence_error(result, "'no/such/teacher' does not exist")
    result = _run("fit", *_shipped("teacher_tiny"), "--ckpt_path", "no/such.ckpt")
    _assert_one_sentence_error(result, "no/such.ckpt")


def test_a_real_teacher_config_without_its_weights_is_one_sentence():
    """The error raised while the model is built (inside jsonargparse) still reaches the user alone."""
    result = _run("fit", *_shipped("seme_hunyuan"))
    _assert_one_sentence_error(result, "teacher folder 'pretrained/HunyuanVideo' does not exist.")
    assert [line for line in result.stderr.splitlines() if line.startswith("error")] == [
        "error: teacher folder 'pretrained/HunyuanVideo' does not exist."
    ]
    assert "Expected a" not in result.stderr


def test_a_misspelled_config_key_names_the_key(tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text((REPO / "configs" / "teacher_tiny.yaml").read_text().replace("guidance_scale:", "guidance_scal:"))
    result = _run("fit", *_shipped("teacher_tiny")[:2], "--config", str(config))
    _assert_one_sentence_error(result, "guidance_scal")


def test_an_unknown_command_is_refused():
    result = _run("train")
    _assert_one_sentence_error(result, "unknown command 'train'")


def test_cache_refuses_a_config_that_trains_from_no_cache():
    result = _run("cache", "--config", str(REPO / "configs" / "teacher_tiny.yaml"))
    _assert_one_sentence_error(result, "does not train from a trajectory cache")
