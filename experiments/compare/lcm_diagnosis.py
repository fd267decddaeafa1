"""Why LCM-4 fails on the tiny tier: training or a defect? For a one-phase consistency student (LCM), the
consistency function f(x_n) = jump(x_n, σ_n → 0) should land on the end of the teacher's own trajectory
through x_n at *every* grid index n. Consistency distillation teaches that one grid link at a time, from
n = 0 upward, so a student trained too briefly is right near σ = 0 and wrong near σ = 1; a defect (a wrong
target, a wrong boundary condition, a wrong sampler) would show at every n, including the first links.
This measures, for held-out cached trajectories, the mean squared error of f(x_n) against the cached
clean end, per n — for the LCM students of `make sweep-baselines`, and for the 50-step teacher's own
one-step jump as the scale of a useless answer.

    python -m experiments.compare.lcm_diagnosis runs/ablation/seed0/lcm_lr2e-05/final.ckpt … > out.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dcm_lightning.conditioning import TextCondition
from dcm_lightning.data.trajectory_cache import MANIFEST, CacheSpec, TrajectoryCache
from dcm_lightning.diffusion.consistency import jump
from dcm_lightning.generation import student_module_from_checkpoint
from dcm_lightning.sampling import denoiser

INDICES = (0, 6, 12, 24, 36, 43, 49)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--cache", default="runs/cache/tiny_teacher")
    parser.add_argument("--samples", type=int, default=16, help="trajectories (the cache's last ones)")
    args = parser.parse_args()
    manifest = json.loads((Path(args.cache) / MANIFEST).read_text())
    cache = TrajectoryCache(args.cache, CacheSpec.from_json(manifest["spec"]))
    rows = range(cache.spec.num_samples - args.samples, cache.spec.num_samples)
    reads = [cache.read_sample(i, [*INDICES, -1]) for i in rows]
    states = torch.stack([r["states"] for r in reads], dim=1)  # k b c f h w
    embeds = torch.stack([r["text_embeds"] for r in reads])
    mask = torch.stack([r["text_mask"] for r in reads])
    clean = states[-1]
    results = {}
    for path in args.checkpoints:
        module, _ = student_module_from_checkpoint(path)
        student, teacher = module.student, module.teacher
        condition = TextCondition(embeds, mask)
        per_index = {}
        for k, n in enumerate(INDICES):
            sigma = module.sigma(torch.full((len(rows),), n))
            with torch.no_grad():
                end = jump(
                    denoiser(student, condition), student.parameterization, states[k], sigma, torch.zeros_like(sigma)
                )
                one_step = jump(
                    denoiser(teacher, condition), teacher.parameterization, states[k], sigma, torch.zeros_like(sigma)
                )
            per_index[n] = {
                "student_mse": float((end - clean).square().mean()),
                "teacher_one_step_mse": float((one_step - clean).square().mean()),
            }
        results[path] = per_index
    print(json.dumps({"indices": INDICES, "samples": len(rows), "results": results}, indent=1))


if __name__ == "__main__":
    main()
