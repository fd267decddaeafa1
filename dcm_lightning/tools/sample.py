"""``python -m dcm_lightning sample``: videos from prompts, one mp4 per prompt and seed plus a PNG grid."""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from dcm_lightning.errors import UserError
from dcm_lightning.generation import load_sampler
from dcm_lightning.media import write_mp4, write_png_grid
from dcm_lightning.sampling import seeded_noise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dcm_lightning sample",
        description="Generate videos from text prompts with a trained model. Writes OUT/<prompt>-<seed>.mp4 "
        "per video, OUT/grid.png (one row per video, one column per frame) and OUT/samples.json.",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="a pretrained teacher folder (config.json + model.safetensors), a TeacherModule .ckpt, or a "
        "distilled student .ckpt (SemE, LCM, PCM); default: the tiny teacher shipped with the package",
    )
    parser.add_argument("--prompt", action="append", required=True, help="a prompt; repeat for several")
    parser.add_argument(
        "--steps", type=int, default=None, help="sampling steps (default: a teacher's N = 50, a student's 4)"
    )
    parser.add_argument(
        "--guidance-scale", type=float, default=None, help="classifier-free guidance of a teacher (default: its own)"
    )
    parser.add_argument("--seed", type=int, default=0, help="noise seed of the first video (default 0)")
    parser.add_argument("--num-seeds", type=int, default=1, help="videos per prompt, seeds seed..seed+n-1 (default 1)")
    parser.add_argument("--out", default="samples", help="output folder (default ./samples)")
    parser.add_argument("--fps", type=int, default=8, help="frames per second of the mp4 files (default 8)")
    return parser


def slug(prompt: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", prompt.lower()).strip("_")


def main(argv: Sequence[str]) -> None:
    args = build_parser().parse_args(argv)
    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be at least 1, got {args.steps}.")
    if args.num_seeds < 1:
        raise UserError(f"--num-seeds must be at least 1, got {args.num_seeds}.")
    sampler = load_sampler(args.checkpoint, args.steps, args.guidance_scale)
    model, steps = sampler.model, sampler.steps
    # Prompts are the model's business: the tiny teacher refuses words outside its vocabulary, a real
    # teacher takes any text. Encoded once before any video is made, so a bad prompt costs nothing.
    model.encode_prompts(list(args.prompt))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    jobs = [(prompt, args.seed + k) for prompt in args.prompt for k in range(args.num_seeds)]
    videos, records = [], []
    for prompt, seed in tqdm(jobs, desc=f"{sampler.kind} sampling, {steps} steps", unit="video"):
        noise = seeded_noise([seed], model.latent_shape()).to(model.device)
        start = time.perf_counter()
        condition = model.encode_prompts([prompt])
        latents = sampler.latents(noise, condition)
        seconds = time.perf_counter() - start
        video = model.decode(latents)[0]
        path = out / f"{slug(prompt)}-{seed}.mp4"
        write_mp4(path, video, fps=args.fps)
        videos.append(video)
        records.append(
            {"prompt": prompt, "seed": seed, "steps": steps, "file": path.name, "seconds": round(seconds, 3)}
        )
    write_png_grid(out / "grid.png", torch.stack(videos))
    (out / "samples.json").write_text(json.dumps(records, indent=2) + "\n")
    print(f"wrote {len(records)} videos and grid.png to {out}/")
