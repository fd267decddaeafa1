"""``python -m dcm_lightning cache``: build (or resume, or repair) a run's trajectory cache ahead of ``fit``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from dcm_lightning.errors import UserError
from dcm_lightning.tools.options import Ranks


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dcm_lightning cache",
        description="Generate the teacher trajectories a distillation config trains on, into the config's "
        "data.cache_dir (safetensors shards + manifest.json). An interrupted build resumes where it stopped; "
        "a complete, matching cache is reused; `fit` builds it the same way when it is missing. Under torchrun "
        "(`torchrun --nproc-per-node 8 -m dcm_lightning cache --config …`) every rank builds its share of the "
        "shards on its own GPU, as `fit` does. Further options override the config as in `fit`, e.g. "
        "--data.init_args.num_trajectories 512; the teacher's precision is the config's "
        "(model.init_args.teacher.dtype), since `fit` checks the cache against that teacher.",
    )
    parser.add_argument(
        "--config",
        action="append",
        required=True,
        help="a config file, as for `fit`: repeat it to lay an experiment file over its preset "
        "(--config configs/presets/tiny_cpu.yaml --config configs/seme_tiny.yaml)",
    )
    parser.add_argument(
        "--rebuild-shard",
        type=int,
        action="append",
        default=[],
        metavar="K",
        help="discard shard K (e.g. one reported corrupt) and regenerate only it; repeat for several",
    )
    parser.add_argument(
        "--device",
        default=None,
        help="where the teacher runs: cpu, cuda, cuda:N (default: cuda when available, else cpu; under "
        "torchrun each rank takes cuda:LOCAL_RANK)",
    )
    return parser


def main(argv: Sequence[str]) -> None:
    from dcm_lightning.data.trajectory_datamodule import TrajectoryDataModule
    from dcm_lightning.lightning_cli import DCMLightningCLI

    args, overrides = build_parser().parse_known_args(argv)
    ranks = Ranks.of(args)
    cli = DCMLightningCLI([*(arg for path in args.config for arg in ("--config", path)), *overrides], run=False)
    datamodule, model = cli.datamodule, cli.model
    if not isinstance(datamodule, TrajectoryDataModule) or datamodule.source != "cache":
        raise UserError(
            f"{args.config[-1]} does not train from a trajectory cache (data: TrajectoryDataModule, source: cache)."
        )
    cache = datamodule.trajectory_cache(model)
    for shard in args.rebuild_shard:
        if not 0 <= shard < cache.spec.num_shards:
            raise UserError(f"--rebuild-shard {shard} is outside 0..{cache.spec.num_shards - 1}.")
        if ranks.rank == 0:
            cache.invalidate_shard(shard)
    model.teacher.to(ranks.device)
    with ranks.process_group() as barrier:
        barrier()  # every rank sees the invalidated shards before building
        cache = datamodule.prepare_cache(model, ranks.rank, ranks.world_size, barrier)
    spec = cache.spec
    if ranks.rank == 0:
        print(f"trajectory cache ready: {cache.folder} ({spec.num_samples} trajectories, {spec.num_shards} shards)")
