"""How much of a clip a teacher keeps in its one-step prediction x̂0 at noise level σ.

Renders held-out MovingShapes clips (seed 999), noises them to each σ with fixed noise, asks the
teacher for x̂0 (guidance 1) and lets the oracle read shape and texture off x̂0. A teacher that
draws striped shapes plain loses the stripes in x̂0 from some σ up.

    python -m experiments.teacher_tiny.probe_denoising [CHECKPOINT] [--striped-only]
"""

from __future__ import annotations

import argparse
import json

import torch

from dcm_lightning.moving_shapes import analyze_clip, parse_prompt
from dcm_lightning.moving_shapes.datasets import MovingShapesClips
from dcm_lightning.teachers.loading import load_teacher

SIGMAS = (0.1, 0.3, 0.5, 0.7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default=None, help="teacher folder or .ckpt (default: shipped)")
    parser.add_argument("--clips", type=int, default=24, help="clips to probe (default 24)")
    parser.add_argument("--striped-only", action="store_true", help="probe striped clips only")
    args = parser.parse_args()
    teacher = load_teacher(args.checkpoint)
    pool = MovingShapesClips(20 * args.clips, 999, teacher.spec)
    items = [pool[i] for i in range(len(pool))]
    items = [it for it in items if not args.striped_only or "striped" in it["prompt"]][: args.clips]
    x0 = torch.stack([it["video"] for it in items])  # b c f h w in [−1, 1]
    attributes = [parse_prompt(it["prompt"]) for it in items]
    condition = teacher.encode_prompts([it["prompt"] for it in items])
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    report = {"checkpoint": args.checkpoint or "shipped", "clips": len(items), "per_sigma": {}}
    with torch.no_grad():
        for sigma in SIGMAS:
            noisy = (1 - sigma) * x0 + sigma * eps
            prediction = teacher.predict(noisy, torch.full((len(items),), sigma), condition, guidance_scale=1.0)
            readings = [analyze_clip(v, teacher.spec) for v in teacher.decode(prediction.x0)]
            report["per_sigma"][str(sigma)] = {
                "shape_kept": sum(r.shape == a.shape for r, a in zip(readings, attributes, strict=True)),
                "texture_kept": sum(r.texture == a.texture for r, a in zip(readings, attributes, strict=True)),
            }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
