"""Whether two runs' checkpoints are the same: every weight and every optimizer-state tensor, bit for bit.

    python -m experiments.demo.same_checkpoints RUN_A RUN_B [--steps 250 1000]

RUN_A and RUN_B are run folders (``runs/seme_tiny``, a clone's ``runs/seme_tiny`` …); the checkpoints
compared are ``checkpoints/epoch=0-step=<S>.ckpt``. Used to check that a refactor left training
unchanged (experiments/demo/README.md); exits 1 when any tensor differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from dcm_lightning.checkpoints import read_lightning_checkpoint
from dcm_lightning.errors import UserError


def tensors(value, prefix: str = ""):
    """Every tensor inside nested dicts and lists, keyed by its path."""
    if torch.is_tensor(value):
        yield prefix, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from tensors(item, f"{prefix}/{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from tensors(item, f"{prefix}/{index}")


def compare(a: Path, b: Path) -> list[str]:
    """The paths (state_dict and optimizer states) whose tensors differ, or that only one side has."""
    left, right = (read_lightning_checkpoint(p) for p in (a, b))
    parts = ("state_dict", "optimizer_states")
    one = dict(tensors({k: left[k] for k in parts if k in left}))
    two = dict(tensors({k: right[k] for k in parts if k in right}))
    return sorted(set(one) ^ set(two)) + [k for k in sorted(set(one) & set(two)) if not torch.equal(one[k], two[k])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--steps", type=int, nargs="+", default=[250, 1000])
    args = parser.parse_args()
    different = False
    for step in args.steps:
        name = f"checkpoints/epoch=0-step={step}.ckpt"
        try:
            differences = compare(args.run_a / name, args.run_b / name)
        except UserError as error:
            sys.exit(f"error: {error}")
        print(
            f"step {step}: "
            + ("identical" if not differences else f"{len(differences)} tensors differ, e.g. {differences[:3]}")
        )
        different |= bool(differences)
    sys.exit(1 if different else 0)


if __name__ == "__main__":
    main()
