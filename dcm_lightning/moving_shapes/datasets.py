"""Map-style datasets over MovingShapes: index → the same clip or prompt on every machine."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from dcm_lightning.moving_shapes.render import MovingShapesSpec, render_sample
from dcm_lightning.moving_shapes.vocabulary import ShapeAttributes, all_attributes
from dcm_lightning.randomness import clip_seed


class MovingShapesClips(Dataset):
    """Rendered training clips: ``{"video": c f h w in [−1, 1], "prompt": str}``.

    Clip ``i`` draws its attributes and motion from ``clip_seed(seed, i)``, so the "dataset" needs no
    storage and a different ``seed`` gives disjoint clips (training vs. held-out evaluation).
    """

    def __init__(self, num_clips: int, seed: int, spec: MovingShapesSpec) -> None:
        self.num_clips = num_clips
        self.seed = seed
        self.spec = spec
        self.attributes = all_attributes()

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> dict:
        seed = clip_seed(self.seed, index)
        choice = int(torch.randint(len(self.attributes), (1,), generator=torch.Generator().manual_seed(seed)))
        attributes = self.attributes[choice]
        video, _ = render_sample(attributes, seed, self.spec)
        return {"video": video * 2.0 - 1.0, "prompt": attributes.prompt}


@dataclass(frozen=True)
class PromptCase:
    """One generation job of an evaluation suite: a prompt and the seed of its initial noise."""

    attributes: ShapeAttributes
    seed: int

    @property
    def prompt(self) -> str:
        return self.attributes.prompt


def prompt_suite(num_prompts: int, seeds_per_prompt: int, base_seed: int) -> list[PromptCase]:
    """A fixed evaluation suite: ``num_prompts`` attribute combinations drawn without replacement
    (seeded by ``base_seed``) from all of them, each with ``seeds_per_prompt`` seeds for its initial
    noise. Held out in noise and in clip renders: training draws neither from these seeds."""
    combos = all_attributes()
    if not 0 < num_prompts <= len(combos):
        raise ValueError(f"num_prompts must be in 1..{len(combos)}")
    order = torch.randperm(len(combos), generator=torch.Generator().manual_seed(base_seed)).tolist()
    chosen = [combos[i] for i in order[:num_prompts]]
    return [
        PromptCase(attributes, clip_seed(base_seed, p * seeds_per_prompt + s))
        for p, attributes in enumerate(chosen)
        for s in range(seeds_per_prompt)
    ]


def training_suite(num_cases: int, base_seed: int) -> list[PromptCase]:
    """Prompts (with the seeds of their initial noise) for distillation: every attribute combination
    in turn, in an order seeded by ``base_seed``, each case with its own noise seed."""
    if num_cases < 1:
        raise ValueError("num_cases must be at least 1")
    combos = all_attributes()
    order = torch.randperm(len(combos), generator=torch.Generator().manual_seed(base_seed)).tolist()
    return [PromptCase(combos[order[i % len(combos)]], clip_seed(base_seed, i)) for i in range(num_cases)]
