"""The SLURM launch script: the command it runs, and that it resumes a run that has a last.ckpt."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "slurm" / "dcm_fit.sbatch"


def _launch(tmp_path: Path, *args: str) -> list[str]:
    """Run the script with a stand-in ``srun`` that records the command it was given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    srun = bin_dir / "srun"
    srun.write_text(f'#!/bin/bash\nprintf "%s\\n" "$@" > {tmp_path}/srun.args\n')
    srun.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SLURM_CPUS_PER_TASK": "4",
        "PYTHON": sys.executable,
    }
    subprocess.run(["bash", str(SCRIPT), *args], cwd=tmp_path, env=env, check=True, capture_output=True)
    return (tmp_path / "srun.args").read_text().splitlines()


def test_the_script_runs_fit_with_the_preset_the_config_names_then_the_config_and_extra_options(tmp_path):
    config, preset = REPO / "configs" / "seme_hunyuan.yaml", REPO / "configs" / "presets" / "gpu_3x8.yaml"
    command = _launch(tmp_path, str(config), "--trainer.max_steps", "10")
    fit = ["-m", "dcm_lightning", "fit", "--config", str(preset), "--config", str(config)]
    assert command[-9:] == [*fit, "--trainer.max_steps", "10"]
    assert "--ckpt_path" not in command


def test_the_script_resumes_from_the_runs_last_checkpoint(tmp_path):
    (tmp_path / "runs" / "dete_wan" / "checkpoints" / "last.ckpt").mkdir(parents=True)
    command = _launch(tmp_path, str(REPO / "configs" / "dete_wan.yaml"))
    assert command[command.index("--ckpt_path") + 1] == "runs/dete_wan/checkpoints/last.ckpt"
