"""Sharded (FSDP2) checkpoints are read as shards: `export`, `sample`'s student loading and the detail
stage's semantic expert never read an optimizer state, and under FSDP2 each rank reads only its own
shards. Measured by recording every stored item DCP's ``FileSystemReader`` reads (entry, file, byte
offset, length) while the real readers run on checkpoints `fit` wrote on 2 gloo processes."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
import yaml

from dcm_lightning.checkpoints import (
    MODULE_KEY,
    is_module_checkpoint,
    read_checkpoint_metadata,
    read_lightning_checkpoint,
    read_module_state,
)
from dcm_lightning.cli import main
from dcm_lightning.experts import semantic_weight_sources
from dcm_lightning.generation import student_module_from_checkpoint
from dcm_lightning.modules import DetEModule
from dcm_lightning.modules.dete import STUDENT_PREFIX
from tests.modules.test_real_teachers import real_config
from tests.test_fsdp import FAMILY, SHARDED, run_cli
from tests.tiny_diffusers import teacher_settings, write_latents, write_pipeline_folder

# Built here in one process, or sharded over 2 without training: with an EMA target, which gets the
# semantic expert too. (`fit` runs without one: an EMA target does not train under FSDP2 yet.)
DETAIL = {"detail": {"lora_rank": 4}, "target_network": "ema"}


def _config(work: Path, stage: str, max_steps: int, **model) -> Path:
    """``configs/<stage>_hunyuan.yaml`` on 2 CPU processes under ModelParallelStrategy (FSDP2)."""
    path = real_config(work, stage, FAMILY, max_steps, learning_rate=1e-3, **model)
    values = yaml.safe_load(path.read_text())
    values["trainer"].update(devices=2, strategy=SHARDED)
    values["trainer"]["callbacks"][0]["init_args"]["save_last"] = True
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> dict[str, Path]:
    """A sharded SemE checkpoint (1 step) and the sharded DetE checkpoint trained from it (1 batch: a G
    and a D step), both by `fit` on 2 ranks."""
    root = tmp_path_factory.mktemp("sharded_loading")
    teacher = teacher_settings(write_pipeline_folder(FAMILY, root / "pipeline"), guidance_scale=1.0)
    write_latents(FAMILY, root / "latents")
    seme = _config(root, "seme", 1, teacher=teacher, boundary_index=5)
    run_cli(["fit", "--config", str(seme)], root)
    semantic = root / "seme" / "checkpoints" / "last.ckpt"
    dete = _config(
        root, "dete", 2, semantic_checkpoint=str(semantic), detail={"lora_rank": 4}, discriminator={"hidden_dim": 32}
    )
    run_cli(["fit", "--config", str(dete)], root)
    return {"seme": semantic, "dete": root / "dete" / "checkpoints" / "last.ckpt"}


# ---- what DCP reads ---------------------------------------------------------------------------------


def recording_reader(reads: list[dict]) -> type:
    """A ``FileSystemReader`` that appends each stored item it reads to ``reads``."""

    class RecordingReader(dcp.FileSystemReader):
        def read_data(self, plan, planner):
            for item in plan.items:
                stored = self.storage_data[item.storage_index]
                reads.append(
                    {
                        "folder": str(self.path),
                        "entry": item.storage_index.fqn,
                        "file": stored.relative_path,
                        "offset": stored.offset,
                        "bytes": stored.length,
                    }
                )
            return super().read_data(plan, planner)

    return RecordingReader


@pytest.fixture
def reads(monkeypatch) -> list[dict]:
    """Every stored item read through ``torch.distributed.checkpoint.FileSystemReader`` in this test."""
    recorded: list[dict] = []
    monkeypatch.setattr(dcp, "FileSystemReader", recording_reader(recorded))
    return recorded


def stored_items(folder: Path) -> list[dict]:
    """Every stored item of a sharded checkpoint that holds data, as ``RecordingReader`` records them
    (an FSDP2 shard can be empty: a dimension smaller than the ranks; nothing reads those)."""
    metadata = dcp.FileSystemReader(folder).read_metadata()
    elements = {
        (fqn, tuple(chunk.offsets)): chunk.sizes.numel()
        for fqn, entry in metadata.state_dict_metadata.items()
        if isinstance(entry, dcp.TensorStorageMetadata)
        for chunk in entry.chunks
    }
    return [
        {"entry": index.fqn, "file": info.relative_path, "offset": info.offset, "bytes": info.length}
        for index, info in metadata.storage_data.items()
        if index.offset is None or elements[index.fqn, tuple(index.offset)] > 0
    ]


def summary(items: list[dict]) -> dict[str, int]:
    """Items and bytes in all, and of the optimizer states among them."""
    optimizer = [item for item in items if item["entry"].startswith("optimizer_")]
    return {
        "items": len(items),
        "bytes": sum(item["bytes"] for item in items),
        "optimizer_items": len(optimizer),
        "optimizer_bytes": sum(item["bytes"] for item in optimizer),
    }


# ---- one process ------------------------------------------------------------------------------------


def test_metadata_and_the_module_check_read_no_tensor(sharded, reads):
    for stage, name in (("seme", "SemEModule"), ("dete", "DetEModule")):
        metadata = read_checkpoint_metadata(sharded[stage])
        assert metadata[MODULE_KEY] == name and metadata["global_step"] in (1, 2)
        assert {"hyper_parameters", "teacher_fingerprint", "loops"} <= metadata.keys()
        assert not {"state_dict", "optimizer_0", "optimizer_states"} & metadata.keys()
        assert is_module_checkpoint(sharded[stage], name) and not is_module_checkpoint(sharded[stage], "TeacherModule")
    assert reads == []


def test_a_whole_read_would_read_the_optimizer_states(sharded, reads):
    """The baseline the readers below are measured against: ``read_lightning_checkpoint`` reads every
    stored item, the optimizer states (about two thirds of the bytes under AdamW) included."""
    whole = read_lightning_checkpoint(sharded["seme"])
    measured, stored = summary(reads), summary(stored_items(sharded["seme"]))
    print(f"\nwhole read of the SemE folder: {measured}")
    assert measured == stored and measured["optimizer_bytes"] > measured["bytes"] / 2
    assert whole["optimizer_0"]["param_groups"][0]["lr"] == pytest.approx(1e-3)
    module = read_module_state(sharded["seme"])
    assert module.keys() == whole["state_dict"].keys()
    assert all(torch.equal(v, whole["state_dict"][k]) for k, v in module.items())


@pytest.mark.parametrize("stage", ["seme", "dete"])
def test_export_reads_the_students_weights_and_nothing_else(sharded, reads, tmp_path, stage):
    """`export` (and `sample`, through the same ``student_module_from_checkpoint``): the student's
    weights, each stored item once — no optimizer state, no EMA copy, no discriminator. A DetE
    checkpoint's own weights replace its semantic expert's, so the SemE folder it names is never read."""
    main(["export", "--checkpoint", str(sharded[stage]), "--out", str(tmp_path / "student")])
    assert (tmp_path / "student" / "transformer" / "config.json").is_file()
    measured = summary(reads)
    module_items = [item for item in stored_items(sharded[stage]) if item["entry"].startswith("state_dict.student.")]
    print(f"\nexport of the {stage} folder: {measured}, of {summary(stored_items(sharded[stage]))} stored")
    assert {read["folder"] for read in reads} == {str(sharded[stage])}
    assert measured["optimizer_items"] == 0 and all(read["entry"].startswith("state_dict.") for read in reads)
    assert sorted((r["entry"], r["file"], r["offset"]) for r in reads) == sorted(
        (item["entry"], item["file"], item["offset"]) for item in module_items
    )


def test_a_sharded_detail_expert_loads_for_sampling_with_its_semantic_expert_intact(sharded, reads):
    """The DetE `fit` run above took its semantic expert from the sharded folder under FSDP2
    (``configure_model``): loaded back, its frozen semantic network is the SemE student's, bit for bit."""
    module, metadata = student_module_from_checkpoint(sharded["dete"])
    assert metadata["global_step"] == 2 and "state_dict" not in metadata
    assert {read["folder"] for read in reads} == {str(sharded["dete"])}  # not the SemE folder
    semantic = read_module_state(sharded["seme"], STUDENT_PREFIX)
    state = module.student.network.state_dict()
    sources = semantic_weight_sources(state)
    frozen = {source: state[key] for key, source in sources.items() if key.startswith("semantic.")}
    assert frozen.keys() == semantic.keys() and all(torch.equal(value, semantic[k]) for k, value in frozen.items())


def test_the_detail_stage_reads_only_the_semantic_students_weights(sharded, reads):
    """One process, no device mesh: at construction only metadata; at ``configure_model`` the SemE
    student's weights, full — not its optimizer state — into the semantic network, Ψ and the EMA target."""
    module = DetEModule(semantic_checkpoint=str(sharded["seme"]), **DETAIL)
    assert reads == []
    module.configure_model()
    stored = stored_items(sharded["seme"])
    student_items = [item for item in stored if item["entry"].startswith("state_dict." + STUDENT_PREFIX)]
    print(f"\nsemantic expert, one process: {summary(reads)}, of {summary(stored)} stored")
    assert sorted((r["entry"], r["file"], r["offset"]) for r in reads) == sorted(
        (item["entry"], item["file"], item["offset"]) for item in student_items
    )
    semantic = read_module_state(sharded["seme"], STUDENT_PREFIX)
    teacher = module.teacher.network.state_dict()
    assert any(not torch.equal(v, teacher[k]) for k, v in semantic.items()), "SemE's step changed nothing"
    for network in (module.student.network, module.target_ema.average.network):
        state = network.state_dict()
        sources = semantic_weight_sources(state)
        assert any(key.startswith("psi.") for key in sources)
        assert all(torch.equal(state[key], semantic[source]) for key, source in sources.items())


# ---- two processes: FSDP2 over 2 gloo ranks ---------------------------------------------------------


def _rank(rank: int, world_size: int, port: int, semantic: str, out: str) -> None:
    """One rank: the detail stage's module sharded with ``fully_shard`` over the ranks, then its
    semantic expert loaded (``configure_model``), recording what this rank reads."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        reads: list[dict] = []
        dcp.FileSystemReader = recording_reader(reads)
        module = DetEModule(semantic_checkpoint=semantic, **DETAIL)
        constructed = len(reads)
        module._device_mesh = init_device_mesh(
            "cpu", (world_size, 1), mesh_dim_names=("data_parallel", "tensor_parallel")
        )
        module.configure_model()
        result = {"reads": list(reads), "constructed": constructed}
        result["sharded"] = all(isinstance(p, DTensor) for p in module.student.network.parameters())
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)  # gathered on rank 0
        networks = (module.student.network, module.target_ema.average.network)
        full = [get_model_state_dict(network, options=options) for network in networks]
        if rank == 0:
            expected = read_module_state(semantic, STUDENT_PREFIX)
            result["equal"] = all(
                torch.equal(state[key], expected[source])
                for state in full
                for key, source in semantic_weight_sources(state).items()
            )
        Path(out, f"rank{rank}.json").write_text(json.dumps(result))
        torch.distributed.barrier()  # neither rank tears the group down while the other still uses it
    finally:
        torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_under_fsdp2_each_rank_reads_only_its_own_shards(sharded, tmp_path):
    """The semantic expert read into a student sharded over 2 ranks: each rank reads the chunks of
    its own shards — disjoint, half each, together every stored item of the SemE student and nothing
    else — and the sharded networks then hold the SemE student's weights exactly."""
    torch.multiprocessing.spawn(_rank, args=(2, _free_port(), str(sharded["seme"]), str(tmp_path)), nprocs=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(r["constructed"] == 0 and r["sharded"] for r in ranks) and ranks[0]["equal"]
    student = [
        item for item in stored_items(sharded["seme"]) if item["entry"].startswith("state_dict." + STUDENT_PREFIX)
    ]
    total = summary(student)["bytes"]
    read = [{(r["file"], r["offset"]) for r in rank["reads"]} for rank in ranks]
    figures = [summary(rank["reads"]) for rank in ranks]
    print(f"\nper rank: {figures}; the SemE student: {summary(student)}")
    assert not read[0] & read[1]
    assert read[0] | read[1] == {(item["file"], item["offset"]) for item in student}
    for rank, (items, figure) in enumerate(zip(read, figures, strict=True)):
        assert {file for file, _ in items} == {f"__{rank}_0.distcp"}  # the layout it was written in
        assert figure["optimizer_items"] == 0 and abs(figure["bytes"] - total / 2) < 0.05 * total
