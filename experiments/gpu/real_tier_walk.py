"""The whole real tier as a user walks it, on one GPU, through the user's own commands: a random-init
Wan2.1-T2V-1.3B pipeline folder at 480p × 33 frames → ``encode-latents`` → SemE (``fit``, a few
steps) → DetE (``fit``, a few batches) → ``export`` → ``sample`` of the export, each with
``--device cuda``; every stage's wall time and peak GPU memory.

    python -m experiments.gpu.real_tier_walk --out experiments/gpu/real_tier_walk_h200.json   (on a GPU)
    python -m experiments.gpu.real_tier_walk --tiny --out /tmp/real_tier_walk_tiny.json        (CPU smoke run)

The folder: diffusers' WanTransformer3DModel with Wan2.1-T2V-1.3B's config in bf16, a full-size Wan
VAE (random init), and a one-layer random UMT5 of the transformer's text width with a word-level
tokenizer (the real 5.7 B UMT5-XXL would only add load time). Four random-content videos of another
size than the teacher's (resized and center-cropped by ``encode-latents``) with captions in
metadata.jsonl, plus one corrupt file that must be named and skipped. Random weights: speed and
memory, not quality. ``--tiny`` runs the same walk on the tests' tiny Wan folder on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from dcm_lightning.media import write_mp4
from dcm_lightning.teachers.wan import WAN21_T2V_1_3B
from experiments.gpu.fit_wan_fsdp import REPO, folder_gib, stage_config, timing

PEAK = (
    "import sys, torch; from dcm_lightning.cli import main; main(sys.argv[1:]); "
    "print('PEAK_GIB', torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None)"
)


def write_pipeline(folder: Path, tiny: bool) -> None:
    """The Wan folder: the tests' tiny one, or 1.3B-sized with a full-size VAE and a small UMT5."""
    from tests.tiny_diffusers import t5_tokenizer, write_pipeline_folder

    if tiny:
        write_pipeline_folder("wan", folder, full=True)
        return
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    with torch.device("cuda"):
        transformer = WanTransformer3DModel(**WAN21_T2V_1_3B)
        vae = AutoencoderKLWan()
    transformer.to(torch.bfloat16).save_pretrained(folder / "transformer")
    vae.save_pretrained(folder / "vae")
    del transformer, vae
    UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0).save_pretrained(
        folder / "scheduler"
    )
    tokenizer = t5_tokenizer()
    tokenizer.save_pretrained(folder / "tokenizer")
    width = WAN21_T2V_1_3B["text_dim"]
    config = UMT5Config(vocab_size=len(tokenizer), d_model=width, d_kv=64, d_ff=1024, num_layers=1, num_heads=8)
    UMT5EncoderModel(config).save_pretrained(folder / "text_encoder")
    index = {
        "_class_name": "WanPipeline",
        "transformer": ["diffusers", "WanTransformer3DModel"],
        "scheduler": ["diffusers", "UniPCMultistepScheduler"],
        "vae": ["diffusers", "AutoencoderKLWan"],
        "text_encoder": ["transformers", "UMT5EncoderModel"],
        "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
    }
    (folder / "model_index.json").write_text(json.dumps(index))


def write_videos(folder: Path, frames: int, height: int, width: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    lines = []
    for k in range(4):
        write_mp4(folder / f"clip{k}.mp4", torch.rand(3, frames, height, width, generator=generator), 16, upscale=1)
        lines.append({"file_name": f"clip{k}.mp4", "text": f"a red cat runs in snow, take {k}"})
    (folder / "broken.mp4").write_bytes(b"not a video" * 100)
    lines.append({"file_name": "broken.mp4", "text": "a blue dog jumps"})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def run(*arguments: str) -> dict:
    """``python -m dcm_lightning ARGUMENTS`` in a fresh process: wall time, peak GPU memory, the tail."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", PEAK, *arguments],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},  # the configs name experiments.gpu.step_timer
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    print(result.stdout[-1500:], result.stderr[-2500:], sep="\n", flush=True)
    peak = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("PEAK_GIB")]
    return {
        "command": "python -m dcm_lightning " + " ".join(arguments),
        "returncode": result.returncode,
        "wall_seconds": round(wall, 1),
        "peak_gpu_gib": None if not peak or peak[0] == "None" else round(float(peak[0]), 1),
        "stdout_tail": result.stdout[-600:],
        "error_tail": result.stderr[-1500:] if result.returncode else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--work", default="/tmp/dcm_real_tier_walk")
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny Wan folder on the CPU (smoke run)")
    parser.add_argument("--steps", type=int, default=3, help="SemE steps (default 3)")
    args = parser.parse_args()
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    device, dtype = ("cpu", "float32") if args.tiny else ("cuda", "bfloat16")
    frames, height, width = (17, 64, 64) if args.tiny else (33, 480, 832)
    size = ["--num-frames", str(frames), "--height", str(height), "--width", str(width)]
    report: dict = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__}
    start = time.perf_counter()
    write_pipeline(work / "wan", args.tiny)
    write_videos(work / "videos", frames + 4, height + 40, width + 24)
    report["setup_seconds"] = round(time.perf_counter() - start, 1)
    common = ["--device", device, "--dtype", dtype]

    stages = report["stages"] = {}
    encode = ["encode-latents", "--teacher", str(work / "wan"), "--videos", str(work / "videos")]
    stages["encode_latents"] = run(*encode, "--out", str(work / "latents"), *size, *common)
    out.write_text(json.dumps(report, indent=1))  # after each stage: a run cut short still reports
    teacher = {"path": str(work / "wan"), "num_frames": frames, "height": height, "width": width, "dtype": dtype}
    teacher |= {"shift": 17.0, "guidance_scale": 1.0, "text_encoders": False}
    seme = stage_config(work, "seme", args.steps, args.tiny, teacher=teacher)
    stages["seme"] = run("fit", "--config", str(seme)) | timing(work, f"seme-{args.steps}")
    out.write_text(json.dumps(report, indent=1))
    last = work / "seme" / "checkpoints" / "last.ckpt"
    tiny_head = {"discriminator": {"hidden_dim": 32}, "detail": {"lora_rank": 4}} if args.tiny else {}
    dete = stage_config(work, "dete", 4, args.tiny, semantic_checkpoint=str(last), **tiny_head)
    stages["dete"] = run("fit", "--config", str(dete)) | timing(work, "dete-4")
    stages["dete"]["checkpoint_gib"] = folder_gib(work / "dete" / "checkpoints" / "last.ckpt")
    out.write_text(json.dumps(report, indent=1))
    dete_last = str(work / "dete" / "checkpoints" / "last.ckpt")
    stages["export"] = run("export", "--checkpoint", dete_last, "--out", str(work / "export"))
    stages["sample"] = run(
        "sample",
        "--checkpoint",
        str(work / "export"),
        "--prompt",
        "a red cat runs in snow",
        "--out",
        str(work / "samples"),
        *common,
    )
    samples = work / "samples" / "samples.json"
    stages["sample"]["videos"] = json.loads(samples.read_text()) if samples.is_file() else None
    out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
