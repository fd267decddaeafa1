"""Fixtures shared by the module tests: a SemE → DetE chain through the real CLI, built once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dcm_lightning.cli import main
from tests.modules.test_consistency_modules import distill_config

REPO = Path(__file__).resolve().parents[2]


def dete_config(tmp_path: Path, name: str, semantic: Path, max_steps: int, **model) -> Path:
    config = yaml.safe_load(distill_config(tmp_path, name, tmp_path / "teacher", max_steps).read_text())
    dete = yaml.safe_load((REPO / "configs" / "dete_tiny.yaml").read_text())["model"]
    dete["init_args"].update(semantic_checkpoint=str(semantic), lora_rank=4, lora_alpha=8.0, **model)
    config["model"] = dete
    del config["trainer"]["gradient_clip_val"]  # DetE clips each of its two steps itself
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="package")
def chained(tmp_path_factory):
    from tests.conftest import save_random_teacher

    tmp_path = tmp_path_factory.mktemp("dete_runs")
    teacher = save_random_teacher(tmp_path / "teacher")
    main(["fit", "--config", str(distill_config(tmp_path, "seme", teacher, 2))])
    semantic = tmp_path / "seme" / "checkpoints" / "epoch=0-step=2.ckpt"
    main(["fit", "--config", str(dete_config(tmp_path, "dete", semantic, 4))])  # 2 batches: G + D steps each
    return tmp_path, semantic
