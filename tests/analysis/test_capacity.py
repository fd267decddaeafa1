"""`analyze capacity`: exact parameter and token counts from the transformer's configuration (meta
device), the memory model's scaling with the mesh and context parallelism, and the six real configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcm_lightning.analysis.capacity import architecture, per_gpu, plan, tokens
from dcm_lightning.cli import main
from tests.tiny_diffusers import write_pipeline_folder

REPO = Path(__file__).resolve().parents[2]


def test_the_released_configurations_give_the_known_counts():
    hunyuan = architecture("pretrained/HunyuanVideo")
    assert hunyuan.blocks == 60 and hunyuan.width == 3072 and hunyuan.discriminator_heads == 20
    assert tokens(hunyuan, 129, 720, 1280) == 33 * 45 * 80 + 256  # ~119 k: the 720p × 129 sample
    wan = architecture("pretrained/Wan2.1-T2V-1.3B-Diffusers")
    assert wan.parameters == 1_418_996_800 and tokens(wan, 81, 480, 832) == 32_760  # experiments/gpu/'s


def test_a_pipeline_folder_is_counted_from_its_own_transformer_config(tmp_path):
    import diffusers

    folder = write_pipeline_folder("wan", tmp_path / "pipe")
    arch = architecture(folder, lora_rank=4)
    loaded = diffusers.WanTransformer3DModel.from_pretrained(folder / "transformer")
    assert arch.parameters == sum(p.numel() for p in loaded.parameters())
    assert arch.source.endswith("transformer/config.json") and arch.lora_parameters > 0


def test_weights_shard_over_the_ranks_and_activations_over_the_context_parallel_group():
    arch = architecture("pretrained/Wan2.1-T2V-1.3B-Diffusers")
    one, eight = per_gpu(arch, 32_760, "seme", ranks=1), per_gpu(arch, 32_760, "seme", ranks=8)
    assert eight["weights"] == pytest.approx(one["weights"] / 8)
    assert eight["gradients_and_optimizer"] == pytest.approx(one["gradients_and_optimizer"] / 8)
    split = per_gpu(arch, 32_760, "seme", ranks=8, context_parallel=4)
    assert split["activations"] == pytest.approx(one["activations"] / 4)
    assert per_gpu(arch, 32_760, "dete", ranks=1)["activations"] > one["activations"]  # two graphs
    result = plan("pretrained/Wan2.1-T2V-1.3B-Diffusers", 81, 480, 832, "seme", ranks=1, gpu_gib=8.0)
    totals = result["total_gib_by_context_parallel"]
    assert result["context_parallel_needed"] in (None, 2, 4, 8) and totals[1] > totals[2] > totals[4]


def test_the_six_real_configs_are_planned_in_one_table(tmp_path, capsys):
    configs = [f"configs/{s}_{f}.yaml" for f in ("hunyuan", "wan", "cogvideox") for s in ("seme", "dete")]
    argv = ["analyze", "capacity", "--out", str(tmp_path), *(a for c in configs for a in ("--config", str(REPO / c)))]
    main(argv)
    table = (tmp_path / "capacity.md").read_text().splitlines()
    assert len(table) == 2 + 6
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]] for line in table[2:]}
    needed, configured, fits = -5, -4, -2  # columns from the right
    assert rows["seme_hunyuan.yaml"][needed] != "1" and rows["dete_hunyuan.yaml"][needed] != "1"  # 720p: split
    assert all(rows[f"{s}_{f}.yaml"][needed] == "1" for f in ("wan", "cogvideox") for s in ("seme", "dete"))
    for row in rows.values():  # the shipped configs set what it says they need, and then fit
        assert row[configured] == row[needed] and row[fits] == "yes"


def test_a_tiny_config_is_refused_in_one_sentence(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["analyze", "capacity", "--config", str(REPO / "configs" / "seme_tiny.yaml")])
    assert stop.value.code == 2 and "tiny tier" in capsys.readouterr().err
