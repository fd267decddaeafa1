"""The held-out evaluation suite as a LightningDataModule: fixed prompts, fixed noise seeds."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from dcm_lightning.data.loaders import PromptCases
from dcm_lightning.moving_shapes.datasets import PromptCase, prompt_suite


class PromptSuiteDataModule(L.LightningDataModule):
    """Batches of ``{"prompt", "seed"}`` from ``prompt_suite``: the same prompts and seeds in every
    run, disjoint from the training seeds.

    Args:
        num_prompts: attribute combinations in the suite (MovingShapes has 144).
        seeds_per_prompt: initial-noise seeds per prompt.
        suite_seed: the seed that picks the combinations and their noise seeds.
        batch_size: videos sampled together per model.
    """

    def __init__(self, num_prompts: int = 32, seeds_per_prompt: int = 2, suite_seed: int = 1000, batch_size: int = 16):
        super().__init__()
        self.num_prompts, self.seeds_per_prompt, self.suite_seed = num_prompts, seeds_per_prompt, suite_seed
        self.batch_size = batch_size

    @property
    def cases(self) -> list[PromptCase]:
        return prompt_suite(self.num_prompts, self.seeds_per_prompt, self.suite_seed)

    @property
    def settings(self) -> dict:
        return {
            "num_prompts": self.num_prompts,
            "seeds_per_prompt": self.seeds_per_prompt,
            "suite_seed": self.suite_seed,
        }

    def val_dataloader(self) -> DataLoader:
        return DataLoader(PromptCases(self.cases), batch_size=self.batch_size)

    test_dataloader = val_dataloader
