"""The real-teacher training path on a GPU: `fit` with configs/seme_wan.yaml and configs/dete_wan.yaml
(ModelParallelStrategy / FSDP2, bf16-mixed, activation checkpointing) on a random-init Wan2.1-1.3B
pipeline folder, one process, through the user's own command line.

    python -m experiments.gpu.fit_wan_fsdp --out experiments/gpu/fit_wan_fsdp_h100.json   (on a GPU)
    python -m experiments.gpu.fit_wan_fsdp --tiny --out /tmp/fit_wan_tiny.json             (CPU smoke run)

What it does, in a scratch folder: writes a diffusers folder (model_index.json, transformer/ in bf16,
scheduler/) of a randomly initialized WanTransformer3DModel with Wan2.1-T2V-1.3B's config, and a
latents folder of random 480p × 81-frame latents (16 × 21 × 60 × 104) with 512-token text
embeddings; then runs the SemE stage for a few steps (a sharded checkpoint at the end), resumes it
for two more, and runs the DetE stage (LoRA r 128 + Ψ + discriminator) from the sharded SemE
checkpoint. Each run's batch times and peak GPU memory come from experiments/gpu/step_timer.py.
The folder has no text encoder, so the teacher runs unguided (guidance_scale 1: the online teacher
step is one forward, not CFG's two). Random weights: speed and memory, not quality.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml
from safetensors.torch import save_file

from dcm_lightning.lightning_cli import compose_documented
from dcm_lightning.teachers.wan import WAN21_T2V_1_3B
from experiments.tiny_table import merge

REPO = Path(__file__).resolve().parents[2]

TINY = dict(
    WAN21_T2V_1_3B, num_attention_heads=2, attention_head_dim=16, text_dim=32, freq_dim=32, ffn_dim=64, num_layers=2
)


def write_pipeline(folder: Path, config: dict, device: str, dtype: torch.dtype) -> None:
    from diffusers import UniPCMultistepScheduler, WanTransformer3DModel

    torch.manual_seed(0)
    with torch.device(device):
        transformer = WanTransformer3DModel(**config)
    transformer.to(dtype).save_pretrained(folder / "transformer")
    UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0).save_pretrained(
        folder / "scheduler"
    )
    index = {
        "_class_name": "WanPipeline",
        "transformer": ["diffusers", "WanTransformer3DModel"],
        "scheduler": ["diffusers", "UniPCMultistepScheduler"],
    }
    (folder / "model_index.json").write_text(json.dumps(index))
    del transformer


def write_latents(folder: Path, latent: tuple, text: tuple, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    save_file(
        {
            "latents": torch.randn(count, *latent, generator=generator).to(torch.bfloat16),
            "text_embeds": torch.randn(count, *text, generator=generator).to(torch.bfloat16),
            "text_mask": torch.ones(count, text[0], dtype=torch.uint8),
        },
        folder / "part-00000.safetensors",
    )


def stage_config(work: Path, stage: str, max_steps: int, tiny: bool, **model) -> Path:
    values = compose_documented(REPO / "configs" / f"{stage}_wan.yaml", REPO)
    root = work / stage
    values["trainer"].update(
        num_nodes=1,
        devices=1,
        max_steps=max_steps,
        default_root_dir=str(root),
        logger=False,
        enable_progress_bar=False,
        callbacks=[
            {
                "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                "init_args": {"dirpath": str(root / "checkpoints"), "save_last": True, "every_n_train_steps": 1000},
            },
            {
                "class_path": "experiments.gpu.step_timer.StepTimer",
                "init_args": {"out": str(work / f"{stage}-{max_steps}.json")},
            },
        ],
    )
    values["trainer"]["strategy"]["init_args"]["data_parallel_size"] = 1
    if tiny:
        values["trainer"].update(accelerator="cpu", precision="32-true")
    merge(values["model"]["init_args"], model)
    values["data"]["init_args"].update(latents_dir=str(work / "latents"), num_workers=2)
    path = work / f"{stage}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def fit(config: Path, *extra: str) -> dict:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "dcm_lightning", "fit", "--config", str(config), *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    print(result.stdout[-2000:], result.stderr[-4000:], sep="\n", flush=True)
    error = result.stderr[-1500:] if result.returncode else ""
    return {"returncode": result.returncode, "wall_seconds": round(wall, 1), "error_tail": error}


def timing(work: Path, name: str) -> dict:
    path = work / f"{name}.json"
    if not path.is_file():
        return {}
    record = json.loads(path.read_text())
    seconds = record["batch_seconds"]
    steady = seconds[1:] or seconds  # the first batch includes warm-up
    return {
        "batch_seconds": [round(s, 3) for s in seconds],
        "mean_batch_seconds_after_first": round(sum(steady) / len(steady), 3),
        "peak_memory_gib": None if record["peak_memory_gib"] is None else round(record["peak_memory_gib"], 1),
        "global_step": record["global_step"],
    }


def folder_gib(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**30, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--work", default="/tmp/dcm_fit_wan")
    parser.add_argument("--tiny", action="store_true", help="a tiny config on CPU (smoke run)")
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    device = "cpu" if args.tiny else "cuda"
    config = TINY if args.tiny else WAN21_T2V_1_3B
    frames, height, width = (17, 64, 64) if args.tiny else (81, 480, 832)
    latent = (16, (frames - 1) // 4 + 1, height // 8, width // 8)
    text = (16 if args.tiny else 512, config["text_dim"])
    start = time.perf_counter()
    write_pipeline(work / "wan", config, device, torch.float32 if args.tiny else torch.bfloat16)
    write_latents(work / "latents", latent, text, count=8)
    report: dict = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "latent_shape": list(latent),
        "text_tokens": text[0],
        "setup_seconds": round(time.perf_counter() - start, 1),
    }
    teacher = {
        "path": str(work / "wan"),
        "num_frames": frames,
        "height": height,
        "width": width,
        "shift": 17.0,
        "guidance_scale": 1.0,
        "text_encoders": False,
        "dtype": "float32" if args.tiny else "bfloat16",
    }
    seme = stage_config(work, "seme", args.steps, args.tiny, teacher=teacher)
    report["seme"] = fit(seme) | timing(work, f"seme-{args.steps}")
    Path(args.out).write_text(json.dumps(report, indent=1))
    last = work / "seme" / "checkpoints" / "last.ckpt"
    report["seme"]["checkpoint_gib"] = folder_gib(last) if last.exists() else None
    resumed = stage_config(work, "seme", args.steps + 2, args.tiny, teacher=teacher)
    report["seme_resumed"] = fit(resumed, "--ckpt_path", str(last)) | timing(work, f"seme-{args.steps + 2}")
    out = Path(args.out)
    out.write_text(json.dumps(report, indent=1))  # after each stage: a run cut short still reports
    tiny_head = {"discriminator": {"hidden_dim": 32}} if args.tiny else {}
    dete = stage_config(work, "dete", 4, args.tiny, semantic_checkpoint=str(last), **tiny_head)
    report["dete"] = fit(dete) | timing(work, "dete-4")
    out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
