"""``python -m dcm_lightning sample``: videos from prompts, one mp4 per prompt and seed plus a PNG grid."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from dcm_lightning.errors import UserError
from dcm_lightning.generation import load_sampler
from dcm_lightning.media import preview, prompt_slug, write_mp4, write_png_grid
from dcm_lightning.sampling import seeded_noise
from dcm_lightning.tools.options import add_device_options, add_video_options, device_of, video_of


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dcm_lightning sample",
        description="Generate videos from text prompts with a teacher or a distilled student. Writes "
        "OUT/<prompt>-<seed>.mp4 per video (a real model's at its own size and frame rate), OUT/grid.png (one "
        "row per video: a few frames, downscaled) and OUT/samples.json.",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="a real teacher's diffusers pipeline folder (model_index.json; its text encoders and VAE are "
        "loaded), a distilled student (a `fit` .ckpt or an `export` folder), a tiny-teacher folder or "
        "TeacherModule .ckpt; default: the tiny teacher shipped with the package",
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
    parser.add_argument(
        "--fps", type=int, default=None, help="frame rate of the mp4 files (default: the model's, e.g. Wan 16, tiny 8)"
    )
    add_video_options(parser)
    add_device_options(parser)
    return parser


def main(argv: Sequence[str]) -> None:
    args = build_parser().parse_args(argv)
    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be at least 1, got {args.steps}.")
    if args.num_seeds < 1:
        raise UserError(f"--num-seeds must be at least 1, got {args.num_seeds}.")
    device, video = device_of(args), video_of(args)
    sampler = load_sampler(args.checkpoint, args.steps, args.guidance_scale, device, args.dtype, video)
    model, steps = sampler.model, sampler.steps
    # Prompts are the model's business: the tiny teacher refuses words outside its vocabulary, a real
    # teacher takes any text. Encoded once before any video is made, so a bad prompt costs nothing.
    model.encode_prompts(list(args.prompt))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fps, upscale = args.fps or model.fps, model.display_upscale
    real = upscale == 1  # a real model: minutes per video, so each one's steps get a progress bar

    jobs = [(prompt, args.seed + k) for prompt in args.prompt for k in range(args.num_seeds)]
    previews, records = [], []
    for prompt, seed in tqdm(jobs, desc=f"{sampler.kind} sampling, {steps} steps on {device}", unit="video"):
        noise = seeded_noise([seed], model.latent_shape()).to(model.device)
        start = time.perf_counter()
        with torch.no_grad():
            latents = sampler.latents(noise, model.encode_prompts([prompt]), progress=real)
            seconds = time.perf_counter() - start
            video = model.decode(latents)[0]
        path = out / f"{prompt_slug(prompt)}-{seed}.mp4"
        write_mp4(path, video, fps=fps, upscale=upscale)
        previews.append(preview(video[None].cpu())[0])
        _, frames, height, width = video.shape
        records.append(
            {
                "prompt": prompt,
                "seed": seed,
                "steps": steps,
                "file": path.name,
                "frames": frames,
                "height": height * upscale,
                "width": width * upscale,
                "fps": fps,
                "seconds": round(seconds, 3),
            }
        )
    write_png_grid(out / "grid.png", torch.stack(previews), upscale=upscale)
    (out / "samples.json").write_text(json.dumps(records, indent=2) + "\n")
    print(f"wrote {len(records)} videos and grid.png to {out}/")
