"""DataLoaders every data module builds the same way: a fixed-order training stream that resumes
exactly, prompt suites as datasets, and a split of a fixed list over ranks without padding."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from dcm_lightning.moving_shapes.datasets import PromptCase


class PromptCases(Dataset):
    def __init__(self, cases: list[PromptCase]) -> None:
        self.cases = cases

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> dict:
        case = self.cases[index]
        return {"prompt": case.prompt, "seed": case.seed}


class RankStream(DistributedSampler):
    """Positions ``start``, ``start`` + 1, … < ``length`` of a stream already split across ranks; its
    length stays ``length``, so that a run resumed at ``start`` counts its epoch as the uninterrupted
    run does (Lightning ends an epoch at the loader's length). Lightning wraps the sampler of a
    multi-process run in a DistributedSampler, splitting it again, unless it is one: this is one, so
    the split stays ours (``__init__`` needs no process group, and the order ignores epochs)."""

    def __init__(
        self, length: int, start: int = 0
    ) -> None:  # DistributedSampler.__init__ (a process group) is skipped on purpose
        self.length, self.start = length, start

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.length))

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        pass


def stream_loader(
    dataset: Dataset, items: Sequence[int], batch_size: int, num_workers: int, start: int = 0
) -> DataLoader:
    """Batches of ``dataset[items[start]], dataset[items[start + 1]], …`` in that order: no shuffling,
    since the items are random draws already and a fixed order lets a resumed run start at the next
    one (``start``; the loader's length still counts from 0). In a multi-process run ``items`` are
    this rank's (see TrajectoryDataModule)."""
    return DataLoader(
        Subset(dataset, items),
        batch_size=batch_size,
        sampler=RankStream(len(items), start),
        num_workers=num_workers,
        drop_last=True,
        persistent_workers=num_workers > 0,
    )


class RankShare(DistributedSampler):
    """Rank r of w takes items r, r + w, r + 2w, …: every item once over all ranks, none padded or
    repeated (torch's DistributedSampler repeats items to even out the shares). Lightning keeps a
    sampler that is already distributed."""

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, len(self.dataset), self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, len(self.dataset), self.num_replicas))
