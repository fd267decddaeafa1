"""How large feature matching is in the two feature spaces, on the shipped tiny teacher: the raw hidden
states of the discriminator's blocks (wave 1) against the same blocks through the teacher's output head
(the official code's, now the default), for a fake that differs from the real clip by a 5 % perturbation,
at several σ — next to the consistency (pseudo-Huber) scale of that perturbation.

    python -m experiments.dete.feature_scales > experiments/dete/feature_scales.json
"""

from __future__ import annotations

import json

import torch

from dcm_lightning.losses import feature_matching, pseudo_huber
from dcm_lightning.moving_shapes.datasets import prompt_suite
from dcm_lightning.moving_shapes.render import render_sample
from dcm_lightning.networks.discriminator import every_kth_block
from dcm_lightning.teachers.tiny import TinyTeacher


def main() -> None:
    torch.manual_seed(0)
    teacher = TinyTeacher.from_pretrained()
    readable = teacher.network.discriminator_blocks
    blocks = every_kth_block(readable.start, readable.stop, 2)
    cases = prompt_suite(4, 1, 1000)
    clean = torch.stack([render_sample(c.attributes, c.seed, teacher.spec)[0] for c in cases]) * 2 - 1
    fake_clean = clean + 0.05 * torch.randn_like(clean)  # a 5 % perturbation of the clean clip
    condition = teacher.encode_prompts([c.prompt for c in cases])
    rows = []
    for value in (0.1, 0.5, 0.9):
        sigma = torch.full((len(cases),), value)
        eps = torch.randn_like(clean)
        s = sigma.view(-1, 1, 1, 1, 1)
        real, fake = (1 - s) * clean + s * eps, (1 - s) * fake_clean + s * eps
        with torch.no_grad():
            r, f = (
                teacher.predict(x, sigma, condition, guidance_scale=1.0, feature_blocks=blocks, feature_heads=True)
                for x in (real, fake)
            )
        rows.append(
            {
                "sigma": value,
                "hidden_fm": float(feature_matching(f.features, r.features)),
                "output_head_fm": float(feature_matching(f.head_features, r.head_features)),
                "huber_of_the_perturbation": float(pseudo_huber(fake_clean, clean, 1e-3)),
                "hidden_rms": float(torch.stack([h.square().mean() for h in r.features]).mean().sqrt()),
            }
        )
    print(json.dumps({"blocks": blocks, "batch": len(cases), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
