"""The README's picture: the shipped teacher at 50 steps next to 4-step LCM, PCM and DCM students, every
model sampling the same prompts from the same noise (``make figures``).

    python docs/figures/make_samples_figure.py            # after make demo, make lcm-tiny, make pcm-tiny

Each model is loaded as ``sample`` and ``validate`` load it (``generation.load_sampler``); each row of
the figure is one model, each block of columns one prompt's frames 1, 3, 5 and 7 (of 8).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from einops import rearrange  # noqa: E402

from dcm_lightning.generation import load_sampler  # noqa: E402

PROMPTS = ("a striped red triangle moving left", "a plain green circle moving up", "a striped blue square moving right")
SEEDS = (11, 12, 13)
FRAMES = (0, 2, 4, 6)
GAP = 2  # pixels between frames


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default=None, help="teacher folder or .ckpt (default: the shipped tiny teacher)")
    parser.add_argument("--lcm", default="runs/lcm_tiny/checkpoints/last.ckpt", help="LCM student (make lcm-tiny)")
    parser.add_argument("--pcm", default="runs/pcm_tiny/checkpoints/last.ckpt", help="PCM student (make pcm-tiny)")
    parser.add_argument("--dcm", default="runs/dete_tiny/checkpoints/last.ckpt", help="DCM student (make demo)")
    parser.add_argument("--out", default="docs/figures/samples.png", help="the PNG to write")
    return parser.parse_args()


@torch.no_grad()
def main() -> None:
    args = parse_args()
    rows = [
        ("teacher, 50 steps", args.teacher, 50),
        ("LCM, 4 steps", args.lcm, 4),
        ("PCM, 4 steps", args.pcm, 4),
        ("DCM, 2 + 2 steps", args.dcm, 4),
    ]
    images = []
    for label, path, steps in rows:
        videos = load_sampler(path, steps).videos(list(PROMPTS), list(SEEDS)).float().cpu()  # b c f h w
        chosen = torch.nn.functional.pad(videos[:, :, list(FRAMES)], (0, GAP), value=1.0)  # a white gap per frame
        chosen[:, :, :-1, :, -GAP:] = 0.0  # black between the frames of a clip, white between prompts
        images.append((label, rearrange(chosen, "b c f h w -> h (b f w) c").clamp(0, 1).numpy()))
    height, width = images[0][1].shape[:2]
    figure, axes = plt.subplots(len(images), 1, figsize=(width / 18, len(images) * (height / 18 + 0.35)))
    for axis, (label, image) in zip(axes, images, strict=True):
        axis.imshow(image, interpolation="nearest")
        axis.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
    for column, prompt in enumerate(PROMPTS):
        axes[0].set_title(None)
        axes[0].text((column + 0.5) * width / len(PROMPTS), -4, f'"{prompt}"', ha="center", va="bottom", fontsize=8)
    figure.suptitle("Same prompts, same noise: frames 1, 3, 5, 7 of each 8-frame clip", fontsize=9, y=0.995)
    figure.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=150, bbox_inches="tight")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
