"""OracleSamples: the tiny tier's sample check, a callback on any training module — oracle accuracies of
the module's own samples at a fixed step interval, counted in optimizer steps, continued on resume."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import yaml

from dcm_lightning.callbacks import OracleSamples
from dcm_lightning.cli import main
from dcm_lightning.errors import UserError
from dcm_lightning.evaluation.oracle_accuracy import oracle_accuracy
from dcm_lightning.generation import student_module_from_checkpoint
from dcm_lightning.moving_shapes import MovingShapesSpec, parse_prompt
from dcm_lightning.moving_shapes.render import render_sample
from tests.conftest import save_random_teacher
from tests.modules.test_consistency_modules import distill_config, logged

CHECK = {"class_path": "dcm_lightning.callbacks.OracleSamples", "init_args": {"every_n_steps": 2, "num_prompts": 3}}


def _config(tmp_path, name: str, max_steps: int):
    path = distill_config(tmp_path, name, tmp_path / "teacher", max_steps)
    config = yaml.safe_load(path.read_text())
    config["trainer"]["callbacks"].append(CHECK)
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("oracle_samples")
    save_random_teacher(tmp_path / "teacher")
    main(["fit", "--config", str(_config(tmp_path, "straight", 4))])
    main(["fit", "--config", str(_config(tmp_path, "resumed", 2))])
    interrupted = tmp_path / "resumed" / "checkpoints" / "epoch=0-step=2.ckpt"
    main(["fit", "--config", str(_config(tmp_path, "resumed", 4)), "--ckpt_path", str(interrupted)])
    return tmp_path


def test_the_check_logs_the_modules_samples_every_n_optimizer_steps(runs):
    accuracies = logged(runs / "straight", "val/all_acc")
    assert sorted(accuracies) == [2, 4]  # after optimizer steps 2 and 4
    for name in ("val/shape_acc", "val/color_acc", "val/texture_acc", "val/direction_acc"):
        assert sorted(logged(runs / "straight", name)) == [2, 4], name
    # The logged numbers are the oracle's reading of the module's own samples at that step.
    module, _ = student_module_from_checkpoint(runs / "straight" / "checkpoints" / "epoch=0-step=4.ckpt")
    check = OracleSamples(every_n_steps=2, num_prompts=3)
    prompts, seeds = [c.prompt for c in check.cases], [c.seed for c in check.cases]
    scores = oracle_accuracy(module.sample(prompts, seeds), [parse_prompt(p) for p in prompts], module.student.spec)
    assert accuracies[4] == pytest.approx(scores["all_acc"])


def test_a_resumed_run_checks_at_the_same_steps_and_only_once(runs):
    first = logged(runs / "resumed", "val/all_acc")
    assert sorted(first) == [2, 4]
    assert first == pytest.approx(logged(runs / "straight", "val/all_acc"))


def test_sampling_leaves_the_training_run_unchanged(runs, tmp_path):
    """The weights after 4 steps equal those of a run without the check."""
    main(["fit", "--config", str(distill_config(tmp_path, "plain", runs / "teacher", 4))])
    checked = torch.load(runs / "straight" / "checkpoints" / "epoch=0-step=4.ckpt", weights_only=True)
    plain = torch.load(tmp_path / "plain" / "checkpoints" / "epoch=0-step=4.ckpt", weights_only=True)
    for key, value in plain["state_dict"].items():
        assert torch.equal(checked["state_dict"][key], value), key


class _Renders(torch.nn.Module):
    """A stand-in module whose "samples" are the clean renders of the prompts: the oracle reads them right."""

    spec = MovingShapesSpec()

    def sample(self, prompts, seeds, steps=None):
        pairs = zip(prompts, seeds, strict=True)
        return torch.stack([render_sample(parse_prompt(p), s, self.spec)[0] for p, s in pairs])


class _Logger:
    def __init__(self):
        self.logged = []

    def log_metrics(self, metrics, step):
        self.logged.append((step, metrics))


def test_the_check_scores_what_the_module_samples_and_logs_it_at_the_step():
    module, logger = _Renders().train(), _Logger()
    trainer = SimpleNamespace(is_global_zero=True, loggers=[logger], global_step=6)
    scores = OracleSamples(every_n_steps=2, num_prompts=5).check(trainer, module)
    assert scores == {"shape_acc": 1.0, "color_acc": 1.0, "texture_acc": 1.0, "direction_acc": 1.0, "all_acc": 1.0}
    assert logger.logged == [(6, {f"val/{k}": v for k, v in scores.items()})]
    assert module.training, "the module is back in training mode"


def test_bad_settings_are_refused():
    with pytest.raises(UserError, match="at least 1"):
        OracleSamples(every_n_steps=0)
