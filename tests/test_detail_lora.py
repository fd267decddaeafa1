"""The detail expert as a diffusers LoRA file plus a Ψ file: a stock pipeline of each tiny teacher
family, given both by the documented recipe, runs the detail expert; this package reads them back
into a fresh dual-expert network; the LoRA file carries the true α."""

from __future__ import annotations

import copy

import diffusers
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from dcm_lightning.detail_lora import (
    LORA_FILE,
    LORA_FOLDER,
    PSI_FILE,
    load_detail_adapters,
    lora_metadata,
    write_detail_adapters,
)
from dcm_lightning.errors import UserError
from dcm_lightning.experts import DualExpertNetwork
from dcm_lightning.teachers.base import LORA_TARGETS
from dcm_lightning.teachers.cogvideox import COGVIDEOX_PSI, CogVideoXNetwork
from dcm_lightning.teachers.hunyuan_video import HUNYUAN_PSI, HunyuanVideoNetwork
from dcm_lightning.teachers.wan import WAN_PSI, WanNetwork
from tests.tiny_diffusers import (
    FAMILIES,
    LATENT,
    PIPELINES,
    POOLED_DIM,
    TEXT_DIM,
    TEXT_TOKENS,
    tiny_transformer,
    write_pipeline_folder,
)

NETWORKS = {"hunyuan_video": HunyuanVideoNetwork, "wan": WanNetwork, "cogvideox": CogVideoXNetwork}
PSI = {"hunyuan_video": HUNYUAN_PSI, "wan": WAN_PSI, "cogvideox": COGVIDEOX_PSI}
RANK, ALPHA = 4, 256.0  # α ≠ r: a reader assuming α = r scales the adapters 64× too little
TOLERANCE = 1e-5


def _detail_expert(family: str, seed: int = 0, alpha: float = ALPHA) -> DualExpertNetwork:
    """The tiny teacher (as the semantic expert) with adapters and Ψ moved off their fresh values."""
    network = DualExpertNetwork(
        NETWORKS[family](tiny_transformer(family)),
        PSI[family],
        lora_rank=RANK,
        lora_alpha=alpha,
        lora_targets=LORA_TARGETS,
        mode="lora",
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in zip(network.trainable_names(), network.trainable_parameters(), strict=True):
            # B starts at 0; α / r = 64 scales it, so a small step already moves the outputs.
            scale = 1e-3 if "lora_B" in name else 0.05
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
    return network.eval()


def _inputs(family: str, seed: int = 1) -> tuple:
    """The family network's call: x (b c f h w), timestep, text embeds and mask (+ pooled, guidance)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2, *LATENT, generator=generator)
    timestep = torch.tensor([700.0, 150.0])
    text = torch.randn(2, TEXT_TOKENS, TEXT_DIM, generator=generator)
    mask = torch.ones(2, TEXT_TOKENS)
    if family == "hunyuan_video":
        return x, timestep, text, mask, torch.randn(2, POOLED_DIM, generator=generator), torch.full((2,), 6000.0)
    return x, timestep, text, mask


def _max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """family → (the written dual-expert network, the tiny teacher's full pipeline folder, the export),
    each written once."""
    cache = {}

    def export(family: str):
        if family not in cache:
            root = tmp_path_factory.mktemp(family)
            network = _detail_expert(family)
            write_detail_adapters(network, root / "export", PIPELINES[family])
            cache[family] = network, write_pipeline_folder(family, root / "teacher", full=True), root / "export"
        return cache[family]

    return export


@pytest.mark.parametrize("family", FAMILIES)
@torch.no_grad()
def test_the_recipe_makes_a_stock_pipeline_run_the_detail_expert(exported, family):
    network, teacher, export = exported(family)
    pipe = getattr(diffusers, PIPELINES[family]).from_pretrained(teacher)
    pipe.load_lora_weights(export / LORA_FOLDER)
    loaded = pipe.transformer.load_state_dict(load_file(export / PSI_FILE), strict=False)
    assert not loaded.unexpected_keys, "every Ψ key is one of the transformer's"
    inputs = _inputs(family)
    expected = network.merged_detail_network()(*inputs)
    assert _max_difference(NETWORKS[family](pipe.transformer)(*inputs), expected) <= TOLERANCE
    assert _max_difference(network(*inputs, expert="detail"), expected) <= TOLERANCE


@pytest.mark.parametrize("family", FAMILIES)
@torch.no_grad()
def test_this_package_reads_the_export_back_into_a_fresh_network(exported, family):
    network, _, export = exported(family)
    fresh = _detail_expert(family, seed=5)
    inputs = _inputs(family)
    assert _max_difference(fresh(*inputs, expert="detail"), network(*inputs, expert="detail")) > 1e-3
    load_detail_adapters(fresh, export)
    assert _max_difference(fresh(*inputs, expert="detail"), network(*inputs, expert="detail")) <= TOLERANCE
    assert torch.equal(fresh(*inputs, expert="semantic"), network(*inputs, expert="semantic"))


@pytest.mark.parametrize("family", FAMILIES)
def test_the_files_say_what_they_hold(exported, family):
    network, _, export = exported(family)
    metadata = lora_metadata(export / LORA_FOLDER / LORA_FILE)
    assert (metadata["r"], metadata["lora_alpha"]) == (RANK, ALPHA), "the true α, not α = r"
    assert sorted(metadata["target_modules"]) == sorted(LORA_TARGETS)
    with safe_open(export / PSI_FILE, framework="pt") as file:
        psi_metadata, psi_keys = file.metadata(), set(file.keys())
    assert "Ψ" in psi_metadata["content"]
    assert psi_metadata["transformer_class"] == type(network.semantic.transformer).__name__
    plain = tiny_transformer(family).state_dict()
    assert psi_keys <= set(plain) and {k.split(".")[0] for k in psi_keys} == {
        name.split(".")[1] for name in PSI[family]
    }


@torch.no_grad()
def test_without_the_alpha_metadata_diffusers_would_load_another_network(exported):
    """What the α metadata buys: the same factors read with α = r give visibly other outputs."""
    family = "wan"
    network, teacher, export = exported(family)
    stripped = load_file(export / LORA_FOLDER / LORA_FILE)  # tensors only: no metadata
    pipe = diffusers.WanPipeline.from_pretrained(teacher)
    pipe.load_lora_weights(stripped)
    pipe.transformer.load_state_dict(load_file(export / PSI_FILE), strict=False)
    inputs = _inputs(family)
    assert _max_difference(WanNetwork(pipe.transformer)(*inputs), network(*inputs, expert="detail")) > 100 * TOLERANCE


@torch.no_grad()
def test_wan_loads_the_detail_expert_into_transformer_2_beside_the_semantic_one(exported):
    family = "wan"
    network, teacher, export = exported(family)
    semantic = diffusers.WanTransformer3DModel.from_pretrained(teacher, subfolder="transformer")
    pipe = diffusers.WanPipeline.from_pretrained(teacher, transformer_2=copy.deepcopy(semantic), boundary_ratio=0.9)
    pipe.load_lora_weights(export / LORA_FOLDER, load_into_transformer_2=True)
    pipe.transformer_2.load_state_dict(load_file(export / PSI_FILE), strict=False)
    inputs = _inputs(family)
    assert _max_difference(WanNetwork(pipe.transformer_2)(*inputs), network(*inputs, expert="detail")) <= TOLERANCE
    assert torch.equal(WanNetwork(pipe.transformer)(*inputs), network(*inputs, expert="semantic"))


def test_a_network_of_other_lora_settings_a_file_without_alpha_or_a_full_copy_is_refused(tmp_path):
    network = _detail_expert("wan")
    lora_path, _ = write_detail_adapters(network, tmp_path, "WanPipeline")
    with pytest.raises(UserError, match="α = 256"):
        load_detail_adapters(_detail_expert("wan", alpha=8.0), tmp_path)
    save_file(load_file(lora_path), lora_path)  # the same factors without metadata: read as α = r
    with pytest.raises(UserError, match="r = 4, α = 4, but"):
        load_detail_adapters(_detail_expert("wan"), tmp_path)
    full = DualExpertNetwork(WanNetwork(tiny_transformer("wan")), WAN_PSI, mode="full")
    for call in (
        lambda: write_detail_adapters(full, tmp_path, "WanPipeline"),
        lambda: load_detail_adapters(full, tmp_path),
    ):
        with pytest.raises(UserError, match="full copy"):
            call()
