"""The fault-injection suite (`make reliability`): every training stage killed at a random step and
resumed, SIGTERM and SLURM's requeue signal, a checkpoint write cut off midway — each run as a real
``python -m dcm_lightning fit`` subprocess and compared with an uninterrupted run of the same config.

With ``DCM_RELIABILITY_RESULTS`` set, each test appends its row (stage, fault, step, outcome, largest
relative difference) to that JSON-lines file; experiments/reliability/report.py tabulates it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dcm_lightning.callbacks.preemption import PREEMPTED_EXIT
from tests.reliability.stages import (
    REPO,
    STAGES,
    Stage,
    final_state,
    finish,
    interrupt_after,
    largest_difference,
    run_fit,
    stage_config,
    start_fit,
)

pytestmark = [pytest.mark.slow, pytest.mark.reliability]
SBATCH = REPO / "scripts" / "slurm" / "dcm_fit.sbatch"
RESULTS = os.environ.get("DCM_RELIABILITY_RESULTS") and Path(os.environ["DCM_RELIABILITY_RESULTS"]).absolute()


def record(**row) -> None:
    out = RESULTS
    if out:
        with open(out, "a") as file:
            file.write(json.dumps(row) + "\n")


def tolerance(stage: Stage) -> float:
    return 1e-7 if stage.devices > 1 else 0.0  # FSDP2: reductions may reorder; one process: bit-identical


def checkpoint_steps(stage: Stage) -> list[int]:
    """The steps that have a checkpoint before the last (the detail expert counts 2 per batch)."""
    every = 2 if stage.name.startswith("dete") else 1
    return list(range(every, stage.max_steps - every + 1, every))


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """Each stage's uninterrupted run, made once (work folder, final checkpoint)."""
    runs = {}

    def get(stage: Stage):
        if stage.name not in runs:
            work = tmp_path_factory.mktemp(stage.name)
            run_fit(stage_config(stage, work, "straight"), work)
            runs[stage.name] = (work, final_state(work / "straight", stage.max_steps))
        return runs[stage.name]

    return get


def resumed_difference(stage: Stage, work: Path, run: str, expected: dict, config: Path | None = None) -> float:
    """Resume run ``run`` from its last.ckpt to the end; its largest difference from ``expected``."""
    last = work / run / "checkpoints" / "last.ckpt"
    run_fit(config or work / f"{run}.yaml", work, "--ckpt_path", str(last))
    return largest_difference(final_state(work / run, stage.max_steps), expected)


@pytest.mark.parametrize("name", list(STAGES))
def test_a_run_killed_at_a_random_step_resumes_to_the_same_weights_and_optimizer_states(name, straight):
    stage = STAGES[name]
    work, expected = straight(stage)
    step = random.Random(f"kill/{name}").choice(checkpoint_steps(stage))
    config = stage_config(stage, work, "killed")
    process = start_fit(config, work)
    interrupt_after(process, work / "killed", step, signal.SIGKILL)
    process.wait()
    difference = resumed_difference(stage, work, "killed", expected)
    record(stage=name, fault="SIGKILL", step=step, outcome="resumed", difference=difference)
    assert difference <= tolerance(stage)


@pytest.mark.parametrize("name", ["seme", "dete_gan", "seme_fsdp2"])
def test_sigterm_saves_a_checkpoint_exits_143_and_the_run_resumes_exactly(name, straight):
    stage = STAGES[name]
    work, expected = straight(stage)
    step = random.Random(f"term/{name}").choice(checkpoint_steps(stage))
    config = stage_config(stage, work, "terminated")
    process = start_fit(config, work)
    interrupt_after(process, work / "terminated", step, signal.SIGTERM)
    status, output = finish(process)
    assert status == PREEMPTED_EXIT, output[-3000:]
    last = work / "terminated" / "checkpoints" / "last.ckpt"
    assert os.readlink(last).startswith("preempted-step="), os.readlink(last)
    assert "Traceback" not in output
    difference = resumed_difference(stage, work, "terminated", expected)
    record(stage=name, fault="SIGTERM", step=step, outcome="resumed", difference=difference)
    assert difference <= tolerance(stage)


def _stand_ins(folder: Path) -> dict:
    """``srun`` that runs its command here, ``scontrol`` that records what it was asked."""
    folder.mkdir(exist_ok=True)
    (folder / "srun").write_text('#!/bin/bash\nwhile [[ "$1" == --* ]]; do shift; done\nexec "$@"\n')
    (folder / "scontrol").write_text(f'#!/bin/bash\necho "$@" >> {folder}/scontrol.log\n')
    for tool in ("srun", "scontrol"):
        (folder / tool).chmod(0o755)
    return {"PATH": f"{folder}:{os.environ['PATH']}", "SLURM_JOB_ID": "4242", "SLURM_CPUS_PER_TASK": "1"}


def test_slurms_requeue_signal_checkpoints_and_the_requeued_job_resumes_exactly(straight, tmp_path):
    """The job script under stand-in ``srun``/``scontrol``: SIGUSR1 (SLURM's warning before the time
    limit, `#SBATCH --signal`) → a checkpoint, exit 143 → the script requeues the job; the requeued
    job (the same script again) finds last.ckpt and continues to the uninterrupted run's weights."""
    stage = STAGES["seme"]
    work, expected = straight(stage)
    config = stage_config(stage, work, "requeued")
    header = f"#   python -m dcm_lightning fit --config configs/presets/empty.yaml --config configs/{config.name}\n"
    (work / "configs" / "presets").mkdir(parents=True, exist_ok=True)
    (work / "configs" / "presets" / "empty.yaml").write_text("seed_everything: 0\n")
    job_config = work / "configs" / config.name
    job_config.write_text(header + config.read_text())
    env = {**os.environ, **_stand_ins(tmp_path / "bin"), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    command = ["bash", str(SBATCH), str(job_config)]
    job = subprocess.Popen(
        command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    step = random.Random("usr1/seme").choice(checkpoint_steps(stage))
    interrupt_after(job, work / "requeued", step, signal.SIGUSR1, children=True)  # the task, not the shell
    status, output = finish(job)
    assert status == 0, output[-3000:]
    assert (tmp_path / "bin" / "scontrol.log").read_text().split() == ["requeue", "4242"]
    again = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "resuming from" in again.stdout, again.stdout[-3000:] + again.stderr[-3000:]
    difference = largest_difference(final_state(work / "requeued", stage.max_steps), expected)
    record(stage="seme", fault="SLURM SIGUSR1 + requeue", step=step, outcome="resumed", difference=difference)
    assert difference == 0.0


def test_a_checkpoint_write_cut_off_midway_leaves_last_on_the_previous_one(straight):
    stage = STAGES["seme"]
    work, expected = straight(stage)
    step = random.Random("torn/seme").choice(checkpoint_steps(stage)[1:])
    config = stage_config(stage, work, "torn")
    values = yaml.safe_load(config.read_text())
    torn = {"class_path": "tests.reliability.faults.TornCheckpointIO", "init_args": {"at_step": step}}
    values["trainer"]["plugins"] = [torn]
    config.write_text(yaml.safe_dump(values))
    status, output = finish(start_fit(config, work))
    assert status == -signal.SIGKILL, output[-3000:]
    folder = work / "torn" / "checkpoints"
    last = folder / "last.ckpt"
    assert os.readlink(last) == f"epoch=0-step={step - 1}.ckpt"
    assert (folder / f".epoch=0-step={step}.ckpt.partial").exists()  # the torn write, under another name
    assert not (folder / f"epoch=0-step={step}.ckpt").exists()
    clean = stage_config(stage, work, "torn")  # the same run without the fault
    difference = resumed_difference(stage, work, "torn", expected, config=clean)
    record(
        stage="seme", fault="checkpoint write cut off (SIGKILL)", step=step, outcome="resumed", difference=difference
    )
    assert difference == 0.0


def test_a_nan_on_one_rank_stops_every_rank_before_the_step_naming_that_rank(straight):
    """FSDP2 on 2 processes: rank 1's batch of step 2 is poisoned; both ranks stop before applying it
    (exit status 2), rank 1 names its terms, and no checkpoint after step 2 is written."""
    stage = STAGES["seme_fsdp2"]
    work, _ = straight(stage)
    config = stage_config(stage, work, "poisoned")
    values = yaml.safe_load(config.read_text())
    poison = {"class_path": "tests.reliability.faults.PoisonBatch", "init_args": {"at_step": 2, "rank": 1}}
    values["trainer"]["callbacks"].append(poison)
    config.write_text(yaml.safe_dump(values))
    status, output = finish(start_fit(config, work))
    assert status == 2, output[-3000:]
    assert "error: step 2, rank 1: non-finite loss terms" in output  # where it started …
    assert "error: step 2, rank 0: a non-finite gradient" in output  # … and the all-reduce spread it
    assert output.count("(loss terms non-finite on ranks [1], a loss term or gradient on ranks [0, 1])") == 2
    assert "Traceback" not in output
    written = (work / "poisoned" / "checkpoints").glob("*step=*")
    assert sorted(int(p.name.split("step=")[1].split(".")[0]) for p in written) == [1, 2]
    outcome = "both ranks stopped before applying step 3; no later checkpoint"
    record(stage="seme_fsdp2", fault="NaN batch on rank 1", step=2, outcome=outcome, difference=None)
