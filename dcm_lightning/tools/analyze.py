"""``python -m dcm_lightning analyze params|boundary``: the analyses behind DCM's design choices."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from dcm_lightning.diffusion import DEFAULT_BOUNDARY_INDEX
from dcm_lightning.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dcm_lightning analyze",
        description="Analyses behind DCM's design: how two trained networks differ by module kind (params), and "
        "where a teacher's trajectories settle their semantics, suggesting the expert boundary κ (boundary).",
    )
    commands = parser.add_subparsers(dest="analysis", required=True)
    params = commands.add_parser(
        "params",
        help="relative parameter difference of B against A, grouped by module kind",
        description="‖θ_B − θ_A‖ / ‖θ_A‖ per module kind (timestep/condition embeddings, attention linears, FFN, "
        "norms with AdaLN modulation, other): a table, OUT/params.json and a bar chart OUT/params.png. A and B are "
        "teachers (folders or TeacherModule checkpoints) or students (checkpoints, sharded checkpoint folders or "
        "exported folders); a DCM student stands for its detail expert, adapters merged.",
    )
    params.add_argument("a", help="the reference network A")
    params.add_argument("b", help="the network B compared with A")
    params.add_argument("--out", required=True, help="output folder (created)")
    params.add_argument(
        "--top", type=int, default=10, help="also list the TOP single parameters that moved most (default 10)"
    )
    boundary = commands.add_parser(
        "boundary",
        help="suggest κ from a teacher's cached trajectories",
        description="Along each cached trajectory, the clean estimate of every teacher step (exact from two "
        "consecutive states) against the trajectory's end: the relative latent distance and, for the tiny "
        "teacher, whether all four oracle attributes already match the end's. Suggests κ as the highest grid "
        "index at and below which they match; writes OUT/boundary.json and OUT/boundary.png.",
    )
    boundary.add_argument("--cache", required=True, help="a trajectory cache folder (kept_indices: null)")
    boundary.add_argument("--teacher", default=None, help="the cache's teacher (default: the shipped tiny teacher)")
    boundary.add_argument("--num-samples", type=int, default=256, help="trajectories read (default 256)")
    boundary.add_argument(
        "--window", type=int, default=5, help="neighbouring indices each curve is averaged over first (default 5)"
    )
    boundary.add_argument(
        "--threshold", type=float, default=0.9, help="attribute agreement that counts as settled (default 0.9)"
    )
    boundary.add_argument(
        "--max-distance",
        type=float,
        default=0.25,
        help="without an oracle: the relative latent distance that counts as settled (default 0.25)",
    )
    boundary.add_argument(
        "--default-kappa",
        type=int,
        default=DEFAULT_BOUNDARY_INDEX,
        help=f"drawn for comparison (default {DEFAULT_BOUNDARY_INDEX}, the configs' κ)",
    )
    boundary.add_argument("--out", required=True, help="output folder (created)")
    capacity = commands.add_parser(
        "capacity",
        help="memory per GPU of a real-teacher config, and the context-parallel ranks it needs",
        description="Parameters, gradients, optimizer states and activations per GPU for the config's mesh "
        "(num_nodes × devices, FSDP2 over all), resolution and precision: parameter counts exact (the "
        "transformer built on the meta device from the pipeline folder's transformer/config.json, or the "
        "released configuration when the folder is absent), activations modeled (dcm_lightning.analysis."
        "capacity); whether it fits the GPU and how many context-parallel ranks would make it fit. A detail-"
        "expert config takes its teacher from the SemE config beside it that writes its semantic checkpoint.",
    )
    capacity.add_argument("--config", required=True, action="append", help="a shipped real config (repeatable)")
    capacity.add_argument("--gpu-gib", type=float, default=80.0, help="GPU memory in GiB (default 80)")
    capacity.add_argument("--out", default=None, help="also write OUT/capacity.json and OUT/capacity.md")
    return parser


def main(argv: Sequence[str]) -> None:
    args = build_parser().parse_args(argv)
    out = Path(args.out) if args.out else None
    if args.analysis == "params":
        _params(args, out)
    elif args.analysis == "capacity":
        _capacity(args)
    else:
        _boundary(args, out)


def _params(args, out: Path) -> None:
    from dcm_lightning.analysis.params import (
        difference_by_kind,
        largest_differences,
        network_weights,
        squared_differences,
    )

    differences = squared_differences(network_weights(args.a), network_weights(args.b))  # one pass over both
    table, largest = difference_by_kind(differences), largest_differences(differences, args.top)
    out.mkdir(parents=True, exist_ok=True)
    record = {"a": args.a, "b": args.b, "kinds": table, "largest_tensors": largest}
    (out / "params.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"{'module kind':<32} {'‖ΔΘ‖/‖Θ_A‖':>12} {'mean per tensor':>16} {'parameters':>12}")
    for kind, row in table.items():
        print(
            f"{kind:<32} {row['relative_difference']:>12.4g} "
            f"{row['mean_tensor_relative_difference']:>16.4g} {row['parameters']:>12,}"
        )
    if largest:
        print(f"\nthe {len(largest)} parameters that moved most")
        for row in largest:
            print(f"{row['name']:<52} {row['kind']:<30} {row['relative_difference']:>10.4g} {row['size']:>10,}")
    _save(_bars(table, args.a, args.b), out / "params.png")
    print(f"wrote {out}/params.json and {out}/params.png")


def _boundary(args, out: Path) -> None:
    from dcm_lightning.analysis.boundary import boundary_curves, boundary_figure, suggest_boundary
    from dcm_lightning.data.trajectory_cache import MANIFEST, CacheSpec, TrajectoryCache
    from dcm_lightning.teachers.base import module_fingerprint
    from dcm_lightning.teachers.loading import load_teacher

    manifest = Path(args.cache) / MANIFEST
    if not manifest.is_file():
        raise UserError(f"{args.cache} is not a complete trajectory cache (no {MANIFEST}).")
    spec = CacheSpec.from_json(json.loads(manifest.read_text())["spec"])
    teacher = load_teacher(args.teacher)
    if module_fingerprint(teacher.network) != spec.teacher_fingerprint:
        raise UserError(f"the cache at {args.cache} was made by another teacher; give that one with --teacher.")
    curves = boundary_curves(TrajectoryCache(args.cache, spec), teacher, args.num_samples)
    kappa = suggest_boundary(curves, args.threshold, args.max_distance, args.window)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "cache": str(args.cache),
        "suggested_kappa": kappa,
        "rule": "attribute agreement >= threshold" if curves.attribute_agreement else "latent distance <= max",
        "threshold": args.threshold,
        "max_distance": args.max_distance,
        "window": args.window,
        **curves.to_json(),
    }
    (out / "boundary.json").write_text(json.dumps(record, indent=1) + "\n")
    _save(boundary_figure(curves, kappa, args.default_kappa), out / "boundary.png")
    print(f"{'n':>3} {'σ_n':>8} {'latent distance':>16} {'attribute agreement':>20}")
    for position, n in enumerate(curves.indices):
        agreement = "" if curves.attribute_agreement is None else f"{curves.attribute_agreement[position]:.3f}"
        print(f"{n:>3} {curves.sigmas[position]:>8.4f} {curves.latent_distance[position]:>16.4f} {agreement:>20}")
    sigma_b = curves.sigmas[curves.indices.index(kappa)]
    print(f"suggested κ = {kappa} (σ_b = {sigma_b:.4f}); wrote {out}/boundary.json and {out}/boundary.png")


def _capacity(args) -> None:
    from dcm_lightning.analysis.capacity import capacity_of_config, capacity_table

    plans = [capacity_of_config(Path(config), args.gpu_gib) for config in args.config]
    table = capacity_table(plans, args.gpu_gib)
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "capacity.json").write_text(json.dumps(plans, indent=1) + "\n")
        (out / "capacity.md").write_text(table + "\n")
        print(f"wrote {out}/capacity.json and {out}/capacity.md")


def _bars(table: dict, a: str, b: str):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.4), constrained_layout=True)
    kinds = list(table)
    axis.bar(range(len(kinds)), [table[k]["relative_difference"] for k in kinds], color="tab:blue")
    axis.set_xticks(range(len(kinds)), [k.replace(" ", "\n", 1) for k in kinds], fontsize=8)
    axis.set_ylabel("‖θ_B − θ_A‖ / ‖θ_A‖")
    axis.set_title(f"B = {Path(b).name} vs A = {Path(a).name}", fontsize=9)
    axis.grid(axis="y", alpha=0.3)
    return figure


def _save(figure, path: Path) -> None:
    from matplotlib import pyplot as plt

    figure.savefig(path, dpi=120)
    plt.close(figure)
