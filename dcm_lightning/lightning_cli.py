"""LightningCLI as this package configures it, for ``cli.py`` and the tools that parse a training config.

A run is composed from a machine preset and an experiment file (configs/README.md):
``fit --config configs/presets/tiny_cpu.yaml --config configs/seme_tiny.yaml``. The preset holds the
trainer, logger and checkpoint blocks once; the experiment file names its run once, as
``trainer.default_root_dir``, and the logger (a link) and the checkpoints (``place_checkpoints``) go there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import importlib
import inspect
import io
import re
import typing
import warnings
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import yaml
from jsonargparse import Namespace
from lightning.pytorch.cli import LightningCLI

from dcm_lightning.checkpoints import MODULE_KEY, read_checkpoint_metadata
from dcm_lightning.errors import UserError


class DCMLightningCLI(LightningCLI):
    """LightningCLI whose model and data classes come from the config's ``class_path``."""

    def __init__(self, args: Sequence[str] | None, run: bool = True) -> None:
        super().__init__(
            model_class=L.LightningModule,
            datamodule_class=L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=None if args is None else list(args),
            # Errors raise instead of exiting, so that main() can name a UserError behind a failed
            # instantiation in one sentence rather than in jsonargparse's account of every union member.
            parser_kwargs={"exit_on_error": False},
            save_config_kwargs={"overwrite": True},
            run=run,
        )

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """``fit`` and ``validate`` only: no module here has a test or predict loop (generation is the
        ``sample`` and ``vbench-generate`` tools), so those entry points would only fail."""
        return {name: keys for name, keys in LightningCLI.subcommands().items() if name in ("fit", "validate")}

    def add_arguments_to_parser(self, parser) -> None:
        # The run's folder is one fact: the logger always writes into trainer.default_root_dir.
        parser.link_arguments("trainer.default_root_dir", "trainer.logger.init_args.save_dir")

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path not in (None, "last", "hpc", "best", "registry"):
            # Before LightningCLI reads its hyperparameters: a missing, truncated or foreign checkpoint
            # (one that would need code to unpickle), or one of another module, is one sentence naming it.
            written_by = read_checkpoint_metadata(ckpt_path).get(MODULE_KEY)
            model = (self.config[subcommand].get("model") or {}).get("class_path", "")
            if written_by and model and written_by != model.rsplit(".", 1)[-1]:
                raise UserError(f"{ckpt_path} was written by {written_by}; this config trains {model}.")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        place_checkpoints(config.trainer, needs_checkpoints=self.subcommand == "fit")


def place_checkpoints(trainer: Namespace, needs_checkpoints: bool) -> None:
    """A ModelCheckpoint without ``dirpath`` writes into ``<trainer.default_root_dir>/checkpoints`` (a
    list item cannot be linked as the logger's folder is). A ``fit`` without any ModelCheckpoint is
    refused: it is an experiment file run without its preset."""
    root = trainer.default_root_dir
    checkpoints = [c for c in trainer.callbacks or [] if c.class_path.endswith(".ModelCheckpoint")]
    if any(c.init_args.dirpath is None for c in checkpoints) and root is None:
        raise UserError("the checkpoints have no folder; name the run with trainer.default_root_dir.")
    for callback in checkpoints:
        if callback.init_args.dirpath is None:
            callback.init_args.dirpath = f"{root}/checkpoints"
    if needs_checkpoints and not checkpoints and trainer.enable_checkpointing is not False:
        raise UserError(
            "this run has no ModelCheckpoint: an experiment file needs its machine preset first, e.g. `fit "
            "--config configs/presets/tiny_cpu.yaml --config configs/seme_tiny.yaml` (configs/README.md)."
        )


CONFIG_FILE_KEYS = ("seed_everything", "trainer", "model", "data", "optimizer", "lr_scheduler")


def compose_config(*paths: str, subcommand: str = "fit") -> dict:
    """The whole configuration ``SUBCOMMAND --config PATH …`` resolves to (what ``--print_config``
    shows), as plain data: for scripts and tests that derive a variant of a shipped run and write it
    as one file."""
    out = io.StringIO()
    arguments = [subcommand, *(arg for path in paths for arg in ("--config", str(path))), "--print_config"]
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit), warnings.catch_warnings():
        # Called from a script that has its own command line: Lightning warns that both are given.
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        DCMLightningCLI(arguments)
    # The subcommand's own options (ckpt_path, verbose) stay out: the file may be run by any entry point.
    return {k: v for k, v in yaml.safe_load(out.getvalue()).items() if k in CONFIG_FILE_KEYS}


# Warnings that say nothing to a user of this package: the frozen teacher is in eval mode on purpose,
# the pytree deprecation comes from inside Lightning.
QUIET_WARNINGS = (
    r"Found \d+ module\(s\) in eval mode",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    # The detail expert checkpoints after its G and D steps on purpose (resume continues from there).
    r"Using ModelCheckpoint with manual optimization and every_n_train_steps",
    # The tools that read a training config hand its arguments to LightningCLI themselves.
    r"LightningCLI's args parameter is intended",
)


# An experiment file's header documents its command: `#   python -m dcm_lightning fit --config P --config F`.
DOCUMENTED_COMMAND = re.compile(r"^#\s+python -m dcm_lightning (fit|validate)((?:\s+--config\s+\S+)+)", re.M)


def documented_command(config: str | Path) -> tuple[str, list[str]]:
    """The subcommand and the ``--config`` files (the preset, then the file itself) that a shipped
    experiment file's header documents, relative to the repository root."""
    found = DOCUMENTED_COMMAND.findall(Path(config).read_text())
    if len(found) != 1:
        raise UserError(f"{config} documents no single `python -m dcm_lightning` command in its header.")
    subcommand, arguments = found[0]
    return subcommand, arguments.split()[1::2]


def compose_documented(config: str | Path, root: str | Path = ".") -> dict:
    """The whole configuration of a shipped experiment file run as its header documents (its preset
    laid first), paths taken from ``root`` (the repository)."""
    subcommand, paths = documented_command(Path(root) / config if not Path(config).is_absolute() else config)
    return compose_config(*(Path(root) / path for path in paths), subcommand=subcommand)


# ---- a parse error in one sentence -------------------------------------------------------------

_BOILERPLATE = re.compile(
    r"^(-\s*)?(Does not validate against any of the Union subtypes|Subtypes:|Errors:|Expected a <class 'NoneType'>"
    r"|Given value type:|Given value:)"
)


def _init_options(cls) -> dict[str, object]:
    """A class's constructor options with their annotations, following ``**kwargs`` up the MRO."""
    options: dict[str, object] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        try:
            hints = typing.get_type_hints(klass.__init__)
        except Exception:  # an annotation that does not resolve here: names without types
            hints = {}
        parameters = inspect.signature(klass.__init__).parameters.values()
        options |= {
            p.name: hints.get(p.name)
            for p in parameters
            if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD
            if p.name != "self"
        }
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return options


def _nested_options(cls, dotted: str) -> tuple[str, list[str]]:
    """The last part of ``dotted`` (``detail.lora_rnk``) and the options valid beside it."""
    *groups, key = dotted.split(".")
    options = _init_options(cls)
    for group in groups:
        kind = options.get(group)
        options = {f.name: f.type for f in dataclasses.fields(kind)} if dataclasses.is_dataclass(kind) else {}
    return key, list(options)


def _closest(key: str, options: list[str]) -> str:
    found = difflib.get_close_matches(key, options, n=1, cutoff=0.5)
    return f"; did you mean {found[0]!r}?" if found else f"; the options are {', '.join(sorted(options))}."


def _class_named(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def parse_error_sentence(message: str) -> str:
    """jsonargparse's account of a bad config or option (several indented lines, every union member
    listed) as one sentence naming the key, the problem and, for a misspelled key, the closest valid one."""
    lines = [line.strip() for line in message.strip().splitlines()]
    lines = [line for line in lines if line and not _BOILERPLATE.match(line)]
    head = lines[0] if lines else message
    section = re.match(r'Parser key "([\w.]+)":', head)
    section = section.group(1) if section else None
    class_path = next((m.group(1) for m in map(re.compile(r"class_path '([\w.]+)'").search, lines) if m), None)
    detail = [line for line in lines[1:] if not line.startswith("- Problem with given class_path")]
    text = " ".join(detail) if detail else head
    if m := re.match(r"(?:Group '(\w+)'|Subcommand '\w+') does not accept option '([\w.]+)'", head):
        group, key = m.groups()
        if group is None:  # the subcommand's: "trainer.max_stpes"
            group, _, key = key.rpartition(".")
        options = list(_init_options(L.Trainer)) if group == "trainer" else []
        return f"{group} has no option {key!r}" + (_closest(key, options) if options else ".")
    if m := re.search(r"Option '([\w.]+)' is not accepted|unrecognized arguments: --([\w.]+)=", text):
        dotted = m.group(1) or m.group(2)
        key, options = _nested_options(_class_named(class_path), dotted)
        return f"{class_path} has no option {section}.init_args.{dotted}" + _closest(key, options)
    if m := re.search(r"module '([\w.]+)' has no attribute '(\w+)'", text):
        module, name = m.groups()
        options = [n for n in dir(importlib.import_module(module)) if not n.startswith("_")]
        return f"{section}.class_path {class_path!r} does not exist" + _closest(name, options)
    if m := re.search(r'Parser key "([\w.]+)": (.*)', text):
        key, problem = m.groups()
        where = f"{section}.init_args.{key}" if section and section != key else key
        return f"{where}: {problem.replace('<class ', '').replace('>', '')}"
    if head.startswith("Problems parsing config"):
        return "a config file is not valid YAML: " + " ".join(lines[1:] if len(lines) > 1 else lines)
    text = re.sub(r"<class '(\w+)'>", r"\1", text)
    return f"{section}: {text}" if section and detail else text
