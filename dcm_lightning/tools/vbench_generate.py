"""``python -m dcm_lightning vbench-generate``: a VBench prompt subset's videos, named as VBench reads them."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from dcm_lightning.errors import UserError
from dcm_lightning.evaluation.vbench_prompts import (
    file_sha256,
    load_augmented_prompts,
    load_full_info,
    select_prompts,
    vbench_info_path,
    video_name,
)
from dcm_lightning.generation import load_sampler
from dcm_lightning.media import write_mp4
from dcm_lightning.randomness import clip_seed
from dcm_lightning.tools.options import add_device_options, add_video_options, device_of, video_of


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dcm_lightning vbench-generate",
        description="Generate the videos of a VBench prompt subset for VBench's standard mode: the first K prompts "
        "of each chosen dimension in VBench_full_info.json (from the vbench package), N videos per prompt named "
        "'{prompt}-{index}.mp4', plus OUT/manifest.json (prompt source, seeds, fps, resolution, frames, steps, "
        "guidance, prompt augmentation). Existing videos are kept, so an interrupted run resumes.",
    )
    parser.add_argument("--checkpoint", default=None, help="teacher or student (default: the shipped tiny teacher)")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's own)")
    parser.add_argument("--guidance-scale", type=float, default=None, help="teachers only (default: their own)")
    parser.add_argument("--dimensions", nargs="+", required=True, help="VBench dimensions, e.g. color scene")
    parser.add_argument("--prompts-per-dimension", type=int, default=2, help="prompts per dimension (default 2)")
    parser.add_argument("--videos-per-prompt", type=int, default=5, help="videos per prompt (VBench: 5)")
    parser.add_argument("--seed", type=int, default=0, help="base seed of the initial noise (default 0)")
    parser.add_argument(
        "--fps", type=int, default=None, help="frame rate of the mp4 files (default: the model's, e.g. Wan 16, tiny 8)"
    )
    parser.add_argument(
        "--augmented-prompts",
        default=None,
        help="JSON object {VBench prompt: augmented prompt}: generate from the augmented text, name by the original",
    )
    parser.add_argument("--full-info", default=None, help="a VBench_full_info.json (default: the vbench package's)")
    parser.add_argument("--out", required=True, help="folder for the videos and manifest.json")
    add_video_options(parser)
    add_device_options(parser)
    return parser


def main(argv: Sequence[str]) -> None:
    args = build_parser().parse_args(argv)
    if args.videos_per_prompt < 1:
        raise UserError("--videos-per-prompt must be at least 1.")
    info_path = Path(args.full_info) if args.full_info else vbench_info_path()
    prompts = select_prompts(load_full_info(info_path), args.dimensions, args.prompts_per_dimension)
    augmented = load_augmented_prompts(Path(args.augmented_prompts)) if args.augmented_prompts else {}
    missing = [p.prompt for p in prompts if augmented and p.prompt not in augmented]
    if missing:
        raise UserError(f"{args.augmented_prompts} has no augmented prompt for {missing[0]!r}.")
    sampler = load_sampler(
        args.checkpoint, args.steps, args.guidance_scale, device_of(args), args.dtype, video_of(args)
    )
    model = sampler.model
    fps, upscale = args.fps or model.fps, model.display_upscale  # the tiny tier's 32×32 clips: ×4
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    records = []
    for number, entry in enumerate(tqdm(prompts, desc=f"vbench {sampler.steps} steps", unit="prompt")):
        text = augmented.get(entry.prompt, entry.prompt)
        seeds = [clip_seed(args.seed, number * args.videos_per_prompt + i) for i in range(args.videos_per_prompt)]
        names = [video_name(entry.prompt, i) for i in range(args.videos_per_prompt)]
        todo = [i for i, name in enumerate(names) if not (out / name).exists()]
        if todo:
            videos = sampler.videos([text] * len(todo), [seeds[i] for i in todo], open_vocabulary=True)
            for i, video in zip(todo, videos, strict=True):
                write_mp4(out / names[i], video, fps=fps, upscale=upscale)
        records.append(
            {
                "prompt": entry.prompt,
                "generated_from": text,
                "dimensions": entry.dimensions,
                "videos": [{"file": name, "seed": seed} for name, seed in zip(names, seeds, strict=True)],
            }
        )
    _, frames, height, width = model.video_shape()
    manifest = {
        "prompt_source": {"file": str(info_path), "sha256": file_sha256(info_path)},
        "dimensions": args.dimensions,
        "prompts_per_dimension": args.prompts_per_dimension,
        "videos_per_prompt": args.videos_per_prompt,
        "naming": "{prompt}-{index}.mp4",
        "seeds": {"base_seed": args.seed, "rule": "clip_seed(base_seed, prompt_number * videos_per_prompt + index)"},
        "fps": fps,
        "frames": frames,
        "resolution": {"height": height * upscale, "width": width * upscale, "generated": [height, width]},
        "steps": sampler.steps,
        "guidance_scale": sampler.guidance_scale,
        "prompt_augmentation": bool(augmented),
        "augmented_prompts_file": args.augmented_prompts,
        "model": {"kind": sampler.kind, "checkpoint": args.checkpoint or "shipped tiny teacher"},
        "prompts": records,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{sum(len(r['videos']) for r in records)} videos of {len(records)} prompts in {out}; manifest.json written")
