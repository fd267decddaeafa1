"""Every shipped experiment file runs by the command its header documents — its machine preset first —
keeps its run in runs/<name>/, and holds only what differs from the preset (configs/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dcm_lightning.cli import main
from dcm_lightning.lightning_cli import DCMLightningCLI, compose_config, documented_command

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
PRESETS = sorted((REPO / "configs" / "presets").glob("*.yaml"))
# Configs whose classes build from the shipped tiny teacher alone, in about a second; the others need a
# trained checkpoint or a real teacher's weights, so they are parsed but not instantiated.
CHEAP = ["seme_tiny", "lcm_tiny", "pcm_tiny", "vcm_tiny", "teacher_tiny", "eval_tiny"]


def composed(config: Path) -> dict:
    subcommand, paths = documented_command(config)
    return compose_config(*(REPO / path for path in paths), subcommand=subcommand)


def cli_arguments(config: Path) -> list[str]:
    _, paths = documented_command(config)
    return [arg for path in paths for arg in ("--config", str(REPO / path))]


def test_there_are_configs_and_presets():
    assert len(CONFIGS) == 19
    assert [p.name for p in PRESETS] == ["gpu_3x8.yaml", "tiny_cpu.yaml"]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_config_documents_its_preset_then_itself(config):
    _, paths = documented_command(config)
    tier = "tiny_cpu" if "tiny" in config.stem.split("_") else "gpu_3x8"
    assert paths == [f"configs/presets/{tier}.yaml", f"configs/{config.name}"]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_config_names_its_run_once_and_leaves_the_machine_to_the_preset(config):
    own = yaml.safe_load(config.read_text())
    assert own["trainer"]["default_root_dir"] == f"runs/{config.stem}"
    machine = {"accelerator", "devices", "num_nodes", "strategy", "precision", "logger", "callbacks"}
    strategy = own["trainer"].pop("strategy", None)
    assert not machine & set(own["trainer"]), "machine, logger and checkpoint settings live in the preset"
    values = composed(config)
    if strategy is not None:  # only how a sample's tokens are split, which the video size decides
        assert strategy["class_path"] == "dcm_lightning.strategies.ContextParallelStrategy"
        assert set(strategy["init_args"]) <= {"ulysses", "ring"}
        composed_strategy = values["trainer"]["strategy"]
        assert composed_strategy["class_path"] == strategy["class_path"]
        assert strategy["init_args"].items() <= composed_strategy["init_args"].items()
        assert "data_parallel_size" not in composed_strategy["init_args"]  # the preset's is not carried over
    assert "class_path" in values["model"] and "class_path" in values["data"]
    assert "save_dir" not in values["trainer"]["logger"]["init_args"]  # linked to trainer.default_root_dir


@pytest.mark.parametrize("name", CHEAP)
def test_cheap_config_instantiates_with_its_logs_and_checkpoints_in_its_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # whatever the classes create lands here, not in the repository's runs/
    config = REPO / "configs" / f"{name}.yaml"
    cli = DCMLightningCLI(cli_arguments(config), run=False)
    values = composed(config)
    assert type(cli.model).__name__ == values["model"]["class_path"].rsplit(".", 1)[1]
    assert type(cli.datamodule).__name__ == values["data"]["class_path"].rsplit(".", 1)[1]
    configured = {c["class_path"].rsplit(".", 1)[1] for c in values["trainer"].get("callbacks") or []}
    assert configured <= {type(c).__name__ for c in cli.trainer.callbacks}
    run = f"runs/{name}"
    assert (cli.trainer.logger.save_dir, cli.trainer.logger.name) == (run, "tensorboard")
    assert Path(cli.trainer.checkpoint_callback.dirpath) == tmp_path / run / "checkpoints"


def test_an_experiment_file_without_its_preset_is_refused_in_one_sentence(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(REPO / "configs" / "seme_tiny.yaml")])
    assert exit_info.value.code == 2
    assert "needs its machine preset first" in capsys.readouterr().err


def test_a_later_config_overrides_and_appends_callbacks(tmp_path):
    """How a variant is composed: a third file overrides one value and appends a callback."""
    variant = tmp_path / "variant.yaml"
    variant.write_text(
        "trainer:\n  max_steps: 7\n  callbacks+:\n    - class_path: lightning.pytorch.callbacks.LearningRateMonitor\n"
    )
    config = REPO / "configs" / "lcm_tiny.yaml"
    _, paths = documented_command(config)
    values = compose_config(*(REPO / path for path in paths), variant)
    names = [c["class_path"].rsplit(".", 1)[1] for c in values["trainer"]["callbacks"]]
    assert values["trainer"]["max_steps"] == 7
    assert names == [
        "ModelCheckpoint",
        "NonFiniteGuard",
        "Preemption",
        "TQDMProgressBar",
        "NoiseLevelGradients",
        "OracleSamples",
        "LearningRateMonitor",
    ]
