"""Command line: LightningCLI for fit/validate plus the tool subcommands.

``python -m dcm_lightning fit --config configs/presets/tiny_cpu.yaml --config configs/teacher_tiny.yaml``
trains (a machine preset, then an experiment file: configs/README.md); ``sample``, ``export`` … are
plain tools that load a trained model. Bad input ends with one sentence and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence

from lightning.fabric.utilities.exceptions import MisconfigurationException

from dcm_lightning.errors import UserError
from dcm_lightning.lightning_cli import QUIET_WARNINGS, DCMLightningCLI, parse_error_sentence

LIGHTNING_COMMANDS = ("fit", "validate")


def _tools() -> dict[str, tuple[str, Callable[[Sequence[str]], None]]]:
    # Imported lazily so that `fit` does not pay for the tools' imports and vice versa.
    from dcm_lightning.tools import (
        analyze,
        cache,
        encode_latents,
        export,
        minibench,
        sample,
        vbench_evaluate,
        vbench_generate,
        vbench_score,
    )

    return {
        "sample": ("generate videos (mp4 + png frame grid) from prompts, with a teacher or a student", sample.main),
        "cache": ("build, resume or repair the teacher-trajectory cache of a distillation config", cache.main),
        "encode-latents": (
            "captioned videos (metadata.jsonl) -> the latent folder a real config trains from",
            encode_latents.main,
        ),
        "export": ("turn a training checkpoint into a self-contained pretrained folder", export.main),
        "minibench": ("MiniBench of teachers and students on one prompt suite (the validate table)", minibench.main),
        "vbench-generate": ("videos of a VBench prompt subset, VBench-named, with a manifest", vbench_generate.main),
        "vbench-evaluate": (
            "run VBench's own evaluator on generated videos, then its aggregation",
            vbench_evaluate.main,
        ),
        "vbench-score": ("VBench Total/Quality/Semantic from VBench's per-dimension result files", vbench_score.main),
        "analyze": (
            "params: two networks' differences by module kind; boundary: suggest κ; capacity: memory per GPU",
            analyze.main,
        ),
    }


USAGE = """usage: python -m dcm_lightning COMMAND [options]     (COMMAND --help for its options)

Distill video diffusion teachers into few-step Dual-Expert Consistency Models.

training and evaluation (LightningCLI, configured by YAML):
  fit             train a model: the tiny teacher, a semantic or detail expert, a baseline
  validate        run a model's validation loop; with configs/eval_tiny.yaml the MiniBench table

tools:
{tools}

examples:
  python -m dcm_lightning fit --config configs/presets/tiny_cpu.yaml --config configs/teacher_tiny.yaml
  python -m dcm_lightning fit --config configs/presets/tiny_cpu.yaml --config configs/seme_tiny.yaml
  python -m dcm_lightning sample --prompt "a striped red triangle moving left" --steps 50
"""


def _user_error(error: BaseException | None) -> UserError | None:
    """The UserError that caused ``error`` (itself, or one it was raised from), if any."""
    while error is not None and not isinstance(error, UserError):
        error = error.__cause__ or error.__context__
    return error


def main(argv: Sequence[str] | None = None) -> None:
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    tools = _tools()
    if not argv or argv[0] in ("-h", "--help"):
        listing = "\n".join(f"  {name:<15} {description}" for name, (description, _) in tools.items())
        print(USAGE.format(tools=listing))
        return
    command, rest = argv[0], argv[1:]
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from dcm_lightning.callbacks.preemption import PREEMPTED_EXIT

    try:
        if command in tools:
            tools[command][1](rest)
        elif command in LIGHTNING_COMMANDS:
            DCMLightningCLI(None if from_command_line else argv)
        else:
            raise UserError(f"unknown command {command!r}; run `python -m dcm_lightning --help` for the list.")
    except SIGTERMException:  # preempted; the Preemption callback saved a checkpoint and said where
        raise SystemExit(PREEMPTED_EXIT) from None
    except argparse.ArgumentError as error:  # a bad option or config value
        sentence = parse_error_sentence(str(error)).rstrip(".")
        print(f"error: {sentence} (`python -m dcm_lightning {command} --help` lists the options).", file=sys.stderr)
        raise SystemExit(2) from None
    except MisconfigurationException as error:  # e.g. `validate` on a module without a validation loop
        print(f"error: {str(error).splitlines()[0]}", file=sys.stderr)
        raise SystemExit(2) from None
    except FileNotFoundError as error:
        print(f"error: file not found: {error.filename or error}", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as error:  # an unwritable place, a full disk …
        print(f"error: {error.strerror or error}: {error.filename or 'a file'}.", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as error:
        cause = _user_error(error)
        if cause is None:
            raise
        print(f"error: {cause}", file=sys.stderr)
        raise SystemExit(2) from None
