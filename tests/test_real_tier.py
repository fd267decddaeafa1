"""The real tier as a user walks it, on complete tiny random-weight HunyuanVideo, Wan2.1 and CogVideoX
pipeline folders (text encoders, tokenizers and VAEs built in tests/tiny_diffusers.py): `sample` with
a free-text prompt writes an mp4 at the model's own size; `encode-latents` turns captioned videos
(one corrupt, one too short, one missing) into the latent folder `fit` trains from with the shipped
real config, and the student it trains samples free text from its checkpoint and its export; an
interrupted encoding resumes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import imageio.v3 as iio
import pytest
import torch

from dcm_lightning.cli import main
from dcm_lightning.data.latent_folder import LatentFolder
from dcm_lightning.media import write_mp4
from dcm_lightning.teachers.pretrained import ADAPTERS, pipeline_class
from tests.modules.test_real_teachers import CONFIG_NAMES, KAPPA, REPO, real_config
from tests.tiny_diffusers import FAMILIES, LATENT, PIPELINES, teacher_settings, write_full_pipeline_folders

PROMPT = "a red cat runs in snow"  # free text: no MovingShapes vocabulary here
SIZE = ["--num-frames", "17", "--height", "64", "--width", "64"]
CPU = ["--device", "cpu", "--dtype", "float32"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return write_full_pipeline_folders(tmp_path_factory.mktemp("pipelines"))


def test_a_pipelines_own_video_size_is_its_call_defaults_or_its_transformers_sample_size(folders):
    native = {family: ADAPTERS[PIPELINES[family]].native_video(folders[family]) for family in FAMILIES}
    assert native["wan"] == {"num_frames": 81, "height": 480, "width": 832}  # WanPipeline.__call__
    assert native["hunyuan_video"] == {"num_frames": 129, "height": 720, "width": 1280}
    assert native["cogvideox"] == {"num_frames": 17, "height": 64, "width": 64}  # the tiny transformer's sample size


@pytest.mark.parametrize("family", FAMILIES)
def test_sample_from_a_pipeline_folder_writes_a_free_text_video_at_the_models_size(folders, family, tmp_path, capsys):
    size = [] if family == "cogvideox" else SIZE  # CogVideoX's own size is the tiny one; the others' are 480p/720p
    out = tmp_path / "samples"
    main(
        ["sample", "--checkpoint", str(folders[family]), "--prompt", PROMPT, "--steps", "2", "--out", str(out)]
        + size
        + CPU
    )
    records = json.loads((out / "samples.json").read_text())
    assert [r["prompt"] for r in records] == [PROMPT]
    adapter = ADAPTERS[pipeline_class(folders[family])]
    frames = iio.imread(out / records[0]["file"], plugin="pyav")
    assert frames.shape == (17, 64, 64, 3)  # the model's own frames and size: no ×4 tiny-tier enlargement
    assert iio.immeta(out / records[0]["file"], plugin="pyav")["fps"] == adapter.fps
    assert records[0]["fps"] == adapter.fps and (records[0]["height"], records[0]["width"]) == (64, 64)
    grid = iio.imread(out / "grid.png")
    assert grid.shape == (64, 8 * 64, 3)  # 8 of the 17 frames
    assert "wrote 1 videos" in capsys.readouterr().out


def test_sample_refuses_a_video_size_for_the_tiny_teacher(capsys):
    with pytest.raises(SystemExit):
        main(["sample", "--prompt", "a striped red triangle moving left", "--height", "64"])
    assert "the tiny teacher's clips have a fixed size" in capsys.readouterr().err


def _write_videos(folder, generator) -> None:
    """Three good clips of another size and length than the teacher's, a corrupt file, a clip too
    short, and an entry whose file is missing."""
    folder.mkdir()
    entries = []
    for k in range(3):
        video = torch.rand(3, 20, 72, 90, generator=generator)
        write_mp4(folder / f"clip{k}.mp4", video, fps=16, upscale=1)
        entries.append({"file_name": f"clip{k}.mp4", "text": f"{PROMPT}, take {k}"})
    (folder / "broken.mp4").write_bytes(
        torch.randint(0, 256, (4096,), dtype=torch.uint8, generator=generator).numpy().tobytes()
    )
    write_mp4(folder / "short.mp4", torch.rand(3, 5, 72, 90, generator=generator), fps=16, upscale=1)
    entries[1:1] = [{"file_name": "broken.mp4", "text": "x"}, {"file_name": "short.mp4", "text": "y"}]
    entries.append({"file_name": "missing.mp4", "text": "z"})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))


@pytest.mark.parametrize("family", FAMILIES)
def test_encode_latents_names_bad_videos_resumes_and_fit_trains_from_the_folder(folders, family, tmp_path, capsys):
    _write_videos(tmp_path / "videos", torch.Generator().manual_seed(0))
    latents = tmp_path / "latents"  # where real_config points data.init_args.latents_dir
    config = str(REPO / "configs" / f"seme_{CONFIG_NAMES[family]}.yaml")
    command = ["encode-latents", "--teacher", str(folders[family]), "--videos", str(tmp_path / "videos")]
    command += ["--out", str(latents), "--config", config, "--part-size", "2"] + SIZE + CPU
    main(command)
    output = capsys.readouterr().out
    assert "encoded 3 of 6 videos (17 frames of 64×64)" in output
    assert "skipped 3 video(s)" in output
    for name in ("broken.mp4", "short.mp4", "missing.mp4"):
        assert f"  {name}: " in output
    assert "fewer than the 17 needed" in output

    data = LatentFolder(latents)
    assert len(data) == 3 and data[0]["latents"].shape == LATENT
    assert data[0]["text_embeds"].shape[-1] == 32 and data[0]["text_mask"].any()
    assert ("text_pooled" in data[0]) == (family == "hunyuan_video")

    # an interrupted run: the last part is missing; a rerun encodes only that part
    first = latents / "part-00000.safetensors"
    stamp = first.stat().st_mtime_ns
    (latents / "part-00002.json").unlink()
    (latents / "part-00002.safetensors").unlink()
    main(command)
    assert first.stat().st_mtime_ns == stamp and len(LatentFolder(latents)) == 3
    torch.testing.assert_close(LatentFolder(latents)[2]["latents"], data[2]["latents"])

    teacher = teacher_settings(folders[family], guidance_scale=1.0)
    main(["fit", "--config", str(real_config(tmp_path, "seme", family, 1, teacher=teacher, boundary_index=KAPPA))])
    checkpoint = tmp_path / "seme" / "checkpoints" / "epoch=0-step=1.ckpt"

    # the student, trained without text encoders or VAE, samples free text: from its checkpoint (the
    # pipeline folder's text encoders and VAE are loaded for it) and from its export
    main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "export")])
    for source in (checkpoint, tmp_path / "export"):
        out = tmp_path / f"samples-{source.name}"
        main(["sample", "--checkpoint", str(source), "--prompt", PROMPT, "--out", str(out)] + CPU)
        record = json.loads((out / "samples.json").read_text())[0]
        assert record["steps"] == 4 and iio.imread(out / record["file"], plugin="pyav").shape == (17, 64, 64, 3)


def test_vbench_generate_writes_a_real_teachers_videos_at_its_own_size_and_frame_rate(folders, tmp_path):
    out = tmp_path / "vbench"
    command = ["vbench-generate", "--checkpoint", str(folders["wan"]), "--dimensions", "color"]
    command += ["--prompts-per-dimension", "1", "--videos-per-prompt", "1", "--steps", "2", "--out", str(out)]
    main(command + SIZE + CPU)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fps"] == 16 and manifest["resolution"] == {"height": 64, "width": 64, "generated": [64, 64]}
    video = out / manifest["prompts"][0]["videos"][0]["file"]
    assert iio.imread(video, plugin="pyav").shape == (17, 64, 64, 3)


@pytest.mark.parametrize("command", ["sample", "vbench-generate", "encode-latents", "minibench"])
def test_a_gpu_asked_for_on_a_machine_without_one_is_one_sentence(command, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    arguments = {
        "sample": ["--prompt", "a striped red triangle moving left"],
        "vbench-generate": ["--dimensions", "color", "--out", str(tmp_path)],
        "encode-latents": ["--teacher", str(tmp_path), "--videos", str(tmp_path), "--out", str(tmp_path)],
        "minibench": ["--model", "t=shipped", "--out", str(tmp_path)],
    }[command]
    with pytest.raises(SystemExit) as exit_info:
        main([command, *arguments, "--device", "cuda"])
    assert exit_info.value.code == 2
    assert "this machine has no CUDA device" in capsys.readouterr().err


def test_encode_latents_under_torchrun_shares_the_parts_among_the_ranks(folders, tmp_path):
    _write_videos(tmp_path / "videos", torch.Generator().manual_seed(0))
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", port]
    command = ["-m", "dcm_lightning", "encode-latents", "--teacher", str(folders["wan"])]
    command += ["--videos", str(tmp_path / "videos"), "--out", str(tmp_path / "latents"), "--part-size", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(launch + command + SIZE + CPU, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    # 6 entries in parts of 2: rank 0 encodes parts 0 and 2 (4 entries), rank 1 part 1 (2 entries)
    assert "encoding latents (rank 0): 100%" in output and "| 4/4 [" in output, output[-2000:]
    assert "encoding latents (rank 1): 100%" in output and "| 2/2 [" in output, output[-2000:]
    assert output.count("encoded 3 of 6 videos") == 1  # rank 0 reports, once every rank is done
    assert len(LatentFolder(tmp_path / "latents")) == 3
