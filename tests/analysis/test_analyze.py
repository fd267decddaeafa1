"""`analyze params` and `analyze boundary`: the pure parts exactly, the commands end to end."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from dcm_lightning.analysis.boundary import BoundaryCurves, clean_estimate, suggest_boundary
from dcm_lightning.analysis.params import largest_tensor_differences, module_kind, relative_difference_by_kind
from dcm_lightning.cli import main
from dcm_lightning.data.trajectory_datamodule import TrajectoryDataModule
from dcm_lightning.diffusion import FlowMatching, VPrediction
from dcm_lightning.diffusion.parameterization import scaled_linear_alphas_cumprod
from dcm_lightning.errors import UserError
from dcm_lightning.teachers.loading import load_teacher
from tests.conftest import save_random_teacher


@pytest.mark.parametrize("parameterization", [FlowMatching(), VPrediction(scaled_linear_alphas_cumprod())])
def test_the_clean_estimate_of_a_ddim_step_is_exact(parameterization):
    generator = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 4, 3, 8, 8, generator=generator), torch.randn(2, 4, 3, 8, 8, generator=generator)
    a_n, b_n = parameterization.coefficients(torch.tensor(0.8, dtype=torch.float64))
    a_p, b_p = parameterization.coefficients(torch.tensor(0.6, dtype=torch.float64))
    estimate = clean_estimate(a_n * x0 + b_n * eps, a_p * x0 + b_p * eps, (a_n, b_n), (a_p, b_p))
    torch.testing.assert_close(estimate.float(), x0, rtol=1e-5, atol=1e-5)


def test_parameters_are_grouped_by_module_kind():
    assert module_kind("time_embedder.linear_1.weight") == "timestep/condition embeddings"
    assert module_kind("condition_embedder.time_proj.weight") == "timestep/condition embeddings"
    assert module_kind("blocks.3.attn1.to_q.weight") == "attention linears"
    assert module_kind("blocks.3.attn1.norm_q.weight") == "norms"
    assert module_kind("transformer_blocks.0.ff.net.0.proj.weight") == "FFN"
    assert module_kind("blocks.0.adaln_modulation.1.weight") == "norms"
    assert module_kind("patch_embed.weight") == "other"


def test_only_the_changed_kind_shows_a_difference():
    a = {"time_embedder.w": torch.ones(4), "blocks.0.attn.to_q.weight": torch.ones(2, 2), "proj_out.w": torch.ones(3)}
    b = {**a, "blocks.0.attn.to_q.weight": torch.full((2, 2), 1.5)}
    table = relative_difference_by_kind(a, b)
    assert table["attention linears"]["relative_difference"] == pytest.approx(0.5)
    assert table["timestep/condition embeddings"]["relative_difference"] == 0.0
    assert table["other"]["parameters"] == 3
    with pytest.raises(UserError, match="different parameters"):
        relative_difference_by_kind(a, {"x": torch.ones(1)})


def test_the_largest_differences_name_the_tensors_that_moved_most():
    a = {"x.w": torch.ones(4), "y.to_q.weight": torch.ones(2, 2), "z.w": torch.ones(3)}
    b = {"x.w": torch.full((4,), 1.1), "y.to_q.weight": torch.full((2, 2), 2.0), "z.w": torch.ones(3)}
    top = largest_tensor_differences(a, b, top=2)
    assert [row["name"] for row in top] == ["y.to_q.weight", "x.w"]
    assert top[0]["relative_difference"] == pytest.approx(1.0) and top[0]["kind"] == "attention linears"
    assert top[1]["relative_difference"] == pytest.approx(0.1) and top[1]["size"] == 4


def test_the_suggested_boundary_is_where_agreement_holds_down_to_the_clean_end():
    indices = list(range(9, -1, -1))
    agreement = [0.1, 0.3, 0.6, 0.95, 0.92, 0.97, 0.93, 0.99, 1.0, 1.0]  # index 9 … 0
    curves = BoundaryCurves(indices, [0.0] * 10, [0.0] * 10, agreement, 8)
    assert suggest_boundary(curves, threshold=0.9, window=1) == 6
    assert suggest_boundary(curves, threshold=0.99, window=1) == 2


def test_analyze_params_and_boundary_from_the_command_line(tmp_path, capsys):
    a, b = save_random_teacher(tmp_path / "a", seed=0), save_random_teacher(tmp_path / "b", seed=1)
    main(["analyze", "params", str(a), str(b), "--out", str(tmp_path / "params"), "--top", "3"])
    record = json.loads((tmp_path / "params" / "params.json").read_text())
    assert len(record["largest_tensors"]) == 3
    assert set(record["kinds"]) == {"timestep/condition embeddings", "attention linears", "FFN", "norms", "other"}
    assert (tmp_path / "params" / "params.png").stat().st_size > 0

    teacher = load_teacher(a)
    consumer = SimpleNamespace(
        teacher=teacher, training_indices=lambda: list(range(10)), needs_clean_sample=False, optimizer_steps_per_batch=1
    )
    data = TrajectoryDataModule(cache_dir=str(tmp_path / "cache"), num_trajectories=4, samples_per_shard=4)
    data.prepare_cache(consumer)
    out = tmp_path / "boundary"
    main(["analyze", "boundary", "--cache", str(tmp_path / "cache"), "--teacher", str(a), "--out", str(out)])
    record = json.loads((out / "boundary.json").read_text())
    assert 1 <= record["suggested_kappa"] <= 8 and record["num_samples"] == 4
    assert len(record["attribute_agreement"]) == len(record["latent_distance"]) == 10
    assert record["latent_distance"][-1] == pytest.approx(0.0, abs=1e-6)  # the last step's estimate is the end
    assert (out / "boundary.png").stat().st_size > 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["analyze", "boundary", "--cache", str(tmp_path / "cache"), "--teacher", str(b), "--out", str(out)])
    assert exit_info.value.code == 2 and "made by another teacher" in capsys.readouterr().err
