"""The dual-expert network: explicit routing, SemE untouched, only adapters and Ψ train, merging."""

from __future__ import annotations

import pytest
import torch

from dcm_lightning.diffusion import sigma_at, teacher_sigmas
from dcm_lightning.errors import UserError
from dcm_lightning.experts import DualExpertNetwork, expert_at
from dcm_lightning.teachers.base import LORA_TARGETS
from dcm_lightning.teachers.tiny import TinyTeacher
from tests.conftest import make_random_teacher

PSI = TinyTeacher.psi_modules


@pytest.fixture
def network():
    return make_random_teacher().network


def _inputs(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 8, 32, 32, generator=generator)
    return (
        x,
        torch.tensor([900.0, 300.0]),
        torch.randn(2, 8, 64, generator=generator),
        torch.ones(2, 8, dtype=torch.bool),
    )


def _perturb(parameters) -> None:
    with torch.no_grad():
        for parameter in parameters:
            parameter.add_(torch.randn_like(parameter) * 0.05)


def test_the_semantic_path_is_the_semantic_network_before_and_after_training_the_detail_path(network):
    inputs = _inputs()
    before = network(*inputs).clone()
    experts = DualExpertNetwork(network, PSI, lora_rank=4, lora_alpha=8, lora_targets=LORA_TARGETS)
    optimizer = torch.optim.AdamW(experts.trainable_parameters(), lr=1e-2)
    for _ in range(3):
        optimizer.zero_grad()
        experts(*inputs, expert="detail").square().mean().backward()
        optimizer.step()
    assert torch.equal(experts(*inputs, expert="semantic"), before)
    assert not torch.equal(experts(*inputs, expert="detail"), before), "the detail expert trained"


def test_with_fresh_adapters_and_psi_the_detail_path_equals_the_semantic_one(network):
    experts = DualExpertNetwork(network, PSI, lora_rank=4, lora_alpha=8, lora_targets=LORA_TARGETS)
    inputs = _inputs()
    torch.testing.assert_close(experts(*inputs, expert="detail"), experts(*inputs, expert="semantic"))


def test_only_adapters_and_psi_are_trainable_and_they_are_chosen_by_name(network):
    experts = DualExpertNetwork(network, PSI, lora_rank=4, lora_alpha=8, lora_targets=LORA_TARGETS)
    names = experts.trainable_names()
    assert names and all("lora_" in n or n.startswith("psi.") for n in names)
    assert {n.split(".")[1] for n in names if n.startswith("psi.")} == set(PSI)
    experts(*_inputs(), expert="semantic")  # switching experts leaves the selection alone
    assert [n for n, p in experts.named_parameters() if p.requires_grad] == names
    assert 0 < experts.trainable_fraction() < 0.5


def test_trainable_weights_round_trip_and_merge_into_a_plain_network(network):
    experts = DualExpertNetwork(network, PSI, lora_rank=4, lora_alpha=8, lora_targets=LORA_TARGETS)
    _perturb(experts.trainable_parameters())
    inputs = _inputs()
    expected = experts(*inputs, expert="detail")
    clone = DualExpertNetwork(make_random_teacher().network, PSI, lora_rank=4, lora_alpha=8, lora_targets=LORA_TARGETS)
    clone.load_trainable_state_dict(experts.trainable_state_dict())
    torch.testing.assert_close(clone(*inputs, expert="detail"), expected)
    merged = experts.merged_detail_network()
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(merged(*inputs), expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(experts(*inputs, expert="detail"), expected)  # merging copied


def test_the_full_parameter_detail_expert_trains_a_whole_copy(network):
    experts = DualExpertNetwork(network, PSI, mode="full")
    assert sum(p.numel() for p in experts.trainable_parameters()) == sum(p.numel() for p in network.parameters())
    assert experts.trainable_fraction() == pytest.approx(1.0)


def test_bad_settings_are_refused(network):
    with pytest.raises(UserError, match="neither modules nor parameters"):
        DualExpertNetwork(network, ["no_such_layer"], lora_targets=LORA_TARGETS)
    with pytest.raises(UserError, match="neither modules nor parameters"):
        DualExpertNetwork(network, ["time_embedder.no_such_layer"], lora_targets=LORA_TARGETS)
    with pytest.raises(UserError, match="LoRA targets"):
        DualExpertNetwork(network, PSI, lora_targets=["no_such_projection"])


def test_every_call_names_its_expert(network):
    experts = DualExpertNetwork(network, PSI, lora_rank=4, lora_alpha=8, lora_targets=LORA_TARGETS)
    with pytest.raises(ValueError, match="needs expert="):
        experts(*_inputs())


def test_a_lora_detail_expert_needs_targets(network):
    with pytest.raises(UserError, match="needs lora_targets"):
        DualExpertNetwork(network, PSI)


def test_the_expert_of_a_noise_level_is_decided_against_the_boundary_sigma():
    """Above σ_b the semantic expert, at and below it the detail expert — compared in σ's dtype, so
    σ_κ itself, rounded to float32 or bfloat16 like σ_b, goes to the detail expert."""
    sigmas = teacher_sigmas(50, 17.0)
    boundary = sigma_at(37, sigmas)
    for dtype in (torch.float64, torch.float32, torch.bfloat16):
        assert expert_at(sigma_at(38, sigmas).to(dtype), boundary) == "semantic"
        assert expert_at(boundary.to(dtype), boundary) == "detail"
        assert expert_at(sigma_at(36, sigmas).to(dtype), boundary) == "detail"


def test_psi_may_name_nested_modules_and_parameters_and_the_semantic_network_keeps_its_own(network):
    """Diffusers transformers keep their timestep layers below the top level (Wan's
    ``condition_embedder.time_proj``) and some as bare parameters (Wan's ``scale_shift_table``)."""
    nested, parameter = "time_embedder.linear_2", "proj_out.bias"
    experts = DualExpertNetwork(network, [nested, parameter], lora_rank=4, lora_alpha=8, lora_targets=LORA_TARGETS)
    names = experts.trainable_names()
    assert {"psi.time_embedder/linear_2.weight", "psi_parameters.proj_out/bias"} <= set(names)
    inputs = _inputs()
    torch.testing.assert_close(experts(*inputs, expert="detail"), experts(*inputs, expert="semantic"))
    for trained in (experts.psi["time_embedder/linear_2"].bias, experts.psi_parameters["proj_out/bias"]):
        with torch.no_grad():
            trained.add_(0.5)
        detail = experts(*inputs, expert="detail")
        assert not torch.equal(detail, experts(*inputs, expert="semantic"))
        torch.testing.assert_close(experts(*inputs, expert="semantic"), network(*inputs))
        with torch.no_grad():
            trained.sub_(0.5)
    assert network.proj_out.bias is not experts.psi_parameters["proj_out/bias"]
