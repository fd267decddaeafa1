"""What the tiny-tier tables share (experiments/ablation_od_pe_tc, compare, kappa, psi): stages that
are the user's own `fit` on configs written from the shipped ones, resumable and skipped once done;
one MiniBench `validate` over every model; rows aggregated as mean ± sample std over seeds; a plot.
`python -m experiments.tiny_table FOLDER…` redraws a table's results.png from its results.json."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from dcm_lightning.lightning_cli import compose_documented

REPO = Path(__file__).resolve().parents[1]
CACHE = "runs/cache/tiny_teacher"


@dataclass(frozen=True)
class Stage:
    """One training run: a shipped config, its model overrides, the semantic stage a detail expert
    starts from, and its length in units of S optimizer steps (a DetE batch counts two)."""

    config: str
    overrides: dict
    semantic: str | None
    units: int


# A detail expert trained on the consistency loss alone (the ablation's rows before GAN/FM).
NO_GAN = {"adversarial": {"weight": 0.0, "feature_matching_weight": 0.0}}

# The full DCM pipeline of the tables (shared run folders: the comparison reuses the ablation's runs).
DCM_STAGES = {
    "seme_tc": Stage("seme_tiny", {}, None, 1),
    "dcm": Stage("dete_tiny", {}, "seme_tc", 2),  # a DetE batch is a G and a D optimizer step
}


def build_cache() -> None:
    """Build the shared trajectory cache once (or reuse it)."""
    tiny = ["--config", "configs/presets/tiny_cpu.yaml", "--config", "configs/seme_tiny.yaml"]
    command = [sys.executable, "-m", "dcm_lightning", "cache", *tiny]
    subprocess.run(command, cwd=REPO, check=True)


def merge(settings: dict, overrides: dict) -> dict:
    """``overrides`` laid over ``settings`` in place, group by group (a DetE group such as
    ``adversarial`` keeps the keys an override does not name), as a later ``--config`` would."""
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(settings.get(key), dict):
            merge(settings[key], value)
        else:
            settings[key] = value
    return settings


def stage_config(stage: Stage, name: str, seed: int, steps: int, root: Path) -> tuple[Path, Path]:
    """Write a stage's config (validation off, checkpoints every 100 steps); returns (config, run folder)."""
    run = root / f"seed{seed}" / name
    values = compose_documented(REPO / "configs" / f"{stage.config}.yaml", REPO)
    values["seed_everything"] = seed
    values["trainer"].update(
        max_steps=stage.units * steps,
        default_root_dir=str(run),
        limit_val_batches=0,  # scored afterwards by MiniBench on held-out prompts
        logger={"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": {"save_dir": str(run)}},
        callbacks=[
            {
                "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                "init_args": {"dirpath": str(run / "checkpoints"), "save_last": True, "every_n_train_steps": 100},
            },
            {"class_path": "lightning.pytorch.callbacks.TQDMProgressBar", "init_args": {"refresh_rate": 50}},
        ],
    )
    merge(values["model"]["init_args"], stage.overrides)
    if stage.semantic is not None:
        values["model"]["init_args"]["semantic_checkpoint"] = str(root / f"seed{seed}" / stage.semantic / "final.ckpt")
    values["data"]["init_args"].update(seed=seed, cache_dir=CACHE)
    run.mkdir(parents=True, exist_ok=True)
    path = run / "config.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path, run


def fit(stage: Stage, name: str, seed: int, steps: int, root: Path) -> float:
    """Train one stage to its final checkpoint, resuming; returns the seconds it took (0 when done)."""
    config, run = stage_config(stage, name, seed, steps, root)
    final, last = run / "final.ckpt", run / "checkpoints" / "last.ckpt"
    if final.exists():
        return 0.0
    command = [sys.executable, "-m", "dcm_lightning", "fit", "--config", str(config)]
    if last.exists():
        command += ["--ckpt_path", str(last)]
    print(f"[table] seed {seed} {name}: {stage.units * steps} steps", flush=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True)
    last.replace(final)
    return time.perf_counter() - start


def evaluate(models: list[dict], root: Path, out: Path) -> dict:
    """One MiniBench `validate` (configs/eval_tiny.yaml's suite: 64 held-out prompts × 2 seeds)."""
    values = compose_documented(REPO / "configs" / "eval_tiny.yaml", REPO)
    values["trainer"].update(logger=False, default_root_dir=str(out))  # Lightning saves config.yaml there
    values["model"]["init_args"].update(models=models, out_dir=str(out), latency_repeats=1, latency_warmup=1)
    path = root / "eval.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    subprocess.run([sys.executable, "-m", "dcm_lightning", "validate", "--config", str(path)], cwd=REPO, check=True)
    return json.loads((out / "results.json").read_text())


def aggregate(results: dict, labels: list[str], seeds: list[int]) -> dict:
    """Per row: every MiniBench score as mean ± sample std over seeds, each seed's scores, and the
    mean PSNR against teacher-50 and seconds per video."""
    rows = {}
    for label in labels:
        per_seed = [results["rows"][f"{label}/seed{seed}"] for seed in seeds]
        summary = {}
        for key in per_seed[0]["minibench"]:
            scores = [r["minibench"][key] for r in per_seed]
            spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
            summary[key] = {"mean": statistics.mean(scores), "std": spread}
        summary["psnr_vs_teacher"] = statistics.mean(r["psnr"] for r in per_seed)
        summary["seconds_per_video"] = statistics.mean(r["seconds_per_video"] for r in per_seed)
        rows[label] = {"seeds": {str(s): r["minibench"] for s, r in zip(seeds, per_seed, strict=True)}, **summary}
    return rows


def markdown(rows: dict, teacher: dict, paper: dict, latency: bool = False) -> str:
    """Our mean ± std next to the paper's VBench numbers when ``paper`` has any (and, with
    ``latency``, seconds per video)."""
    extra = " seconds/video |" if latency else ""
    theirs_header = " paper VBench Total | Quality | Semantic |" if paper else ""
    lines = [
        f"| row | MiniBench Total | Quality | Semantic |{extra}{theirs_header}",
        "|---|---|---|---|" + ("---|" if latency else "") + ("---|---|---|" if paper else ""),
    ]
    keys = ("total", "quality", "semantic")
    for label, row in rows.items():
        ours = " | ".join(f"{row[k]['mean']:.4f} ± {row[k]['std']:.4f}" for k in keys)
        seconds = f" {row['seconds_per_video']:.4f} |" if latency else ""
        values = paper.get(label, (None, None, None))
        theirs = " " + " | ".join("—" if v is None else f"{v:.2f}" for v in values) + " |" if paper else ""
        lines.append(f"| {label} | {ours} |{seconds}{theirs}")
    t = teacher["minibench"]
    seconds = f" {teacher['seconds_per_video']:.4f} |" if latency else ""
    values = paper.get("teacher-50", (83.87, None, None))
    theirs = " " + " | ".join("" if v is None else f"{v:.2f}" for v in values) + " |" if paper else ""
    lines.append(f"| teacher-50 | {t['total']:.4f} | {t['quality']:.4f} | {t['semantic']:.4f} |{seconds}{theirs}")
    return "\n".join(lines) + "\n"


def write_report(rows: dict, results: dict, paper: dict, settings: dict, out: Path, latency: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    teacher = results["rows"]["teacher-50"]
    record = {
        "settings": settings,
        "teacher_50": teacher["minibench"],
        "teacher_50_seconds_per_video": teacher["seconds_per_video"],
        "rows": rows,
        "paper_vbench": paper,
    }
    (out / "results.json").write_text(json.dumps(record, indent=1) + "\n")
    table = markdown(rows, teacher, paper, latency)
    (out / "results.md").write_text(table)
    print(table)
    plot(rows, teacher["minibench"], out / "results.png")


def plot(rows: dict, teacher: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    width = max(11.0, 1.3 * len(rows) + 4.0)  # room for the row labels
    figure, axes = plt.subplots(1, 3, figsize=(width, 3.8), constrained_layout=True)
    labels = list(rows)
    for axis, key in zip(axes, ("total", "quality", "semantic"), strict=True):
        means = [rows[r][key]["mean"] for r in labels]
        stds = [rows[r][key]["std"] for r in labels]
        axis.bar(range(len(labels)), means, yerr=stds, capsize=3, color="tab:blue")
        axis.axhline(teacher[key], color="gray", linestyle="--", label="teacher-50")
        axis.set_xticks(range(len(labels)), labels, rotation=35, ha="right", rotation_mode="anchor", fontsize=8)
        axis.set_title(f"MiniBench {key} (mean ± std over seeds)", fontsize=9)
        low = min(m - s for m, s in zip(means, stds, strict=True))
        axis.set_ylim(max(0.0, low - 0.05), 1.0)
        axis.legend(fontsize=7)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def table_parser(description: str, out_dir: Path) -> argparse.ArgumentParser:
    """The options every table script has (a script may add its own before parsing)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--steps", type=int, default=250, help="S: steps of each semantic stage (default 250)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--root", default="runs/ablation", help="where the runs go (shared by the tables)")
    parser.add_argument("--out", default=str(out_dir.relative_to(REPO)), help="where the result files go")
    parser.add_argument(
        "--only",
        nargs="+",
        default=None,
        metavar="STAGE",
        help="train only these stages (every seed, in this order): to schedule the stages a change affects "
        "first; a later full run skips them",
    )
    parser.add_argument("--train-only", action="store_true", help="stop after training, before scoring")
    parser.add_argument(
        "--rows", nargs="+", default=None, metavar="ROW", help="score only these rows (and the teacher)"
    )
    return parser


def run_table(
    script: str,
    description: str,
    stages: dict,
    rows: dict,
    paper: dict,
    out_dir: Path,
    latency: bool = False,
    args: argparse.Namespace | None = None,
) -> None:
    """The command line of a table script: train every stage for every seed (resuming, skipping what
    is done), score ``rows`` (label: (stage, sampling steps)) and the 50-step teacher with MiniBench,
    and write results.{json,md,png} to ``out_dir`` (or ``--out``). ``args``: already parsed options
    (from ``table_parser``), else they are read from the command line."""
    if args is None:
        args = table_parser(description, out_dir).parse_args()
    root, out = REPO / args.root, REPO / args.out
    start = time.perf_counter()
    build_cache()
    seconds = {}  # 0: the stage was already done (by an earlier run or the other table)
    only = args.only or list(stages)
    unknown = sorted(set(only) - set(stages))
    if unknown:
        raise SystemExit(f"unknown stages {unknown}; this table's are {list(stages)}")
    for seed in args.seeds:
        for name in only:
            seconds[f"seed{seed}/{name}"] = round(fit(stages[name], name, seed, args.steps, root), 1)
    if args.train_only:
        return
    unknown = sorted(set(args.rows or ()) - set(rows))
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; this table's are {list(rows)}")
    rows = {label: rows[label] for label in args.rows} if args.rows else rows
    models = [{"label": "teacher-50", "checkpoint": None, "steps": 50}]
    models += [
        {"label": f"{row}/seed{seed}", "checkpoint": str(root / f"seed{seed}" / stage / "final.ckpt"), "steps": steps}
        for row, (stage, steps) in rows.items()
        for seed in args.seeds
    ]
    results = evaluate(models, root, root / f"eval_{out_dir.name}")
    settings = {
        "steps_S": args.steps,
        "seeds": args.seeds,
        "stage_seconds": seconds,
        "wall_seconds": round(time.perf_counter() - start, 1),
        "command": " ".join(["python -m", script, *sys.argv[1:]]),
        "suite": results["suite"],
        "machine": results.get("machine"),
    }
    write_report(aggregate(results, list(rows), args.seeds), results, paper, settings, out, latency)


if __name__ == "__main__":  # redraw a table's results.png from its results.json
    parser = argparse.ArgumentParser(description="Redraw results.png of table folders from their results.json.")
    parser.add_argument("folders", nargs="+", help="e.g. experiments/kappa")
    for folder in map(Path, parser.parse_args().folders):
        record = json.loads((folder / "results.json").read_text())
        plot(record["rows"], record["teacher_50"], folder / "results.png")
        print(f"wrote {folder / 'results.png'}")
