"""The design document names real code, and the repository points at it rather than at a file outside."""

from __future__ import annotations

import importlib
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design.md"
OLD_DESIGN_FILE = "DESIGN" + ".md"  # spelled in two parts so that this file does not mention it
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
DOTTED_NAME = re.compile(r"\bdcm_lightning(?:\.[A-Za-z_]\w*)+")


def dotted_names(markdown: str) -> list[str]:
    """Every ``dcm_lightning.<…>`` name inside an inline code span (fenced blocks left out), in order."""
    names: list[str] = []
    for span in CODE_SPAN.findall(FENCE.sub("", markdown)):
        names += [name for name in DOTTED_NAME.findall(span) if name not in names]
    return names


def resolves(name: str) -> bool:
    """Import the longest importable module prefix of ``name``, then look up the rest as attributes."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            target = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name is not None and (module_name + ".").startswith(error.name + "."):
                continue  # this prefix is not a module; try a shorter one
            raise
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def test_every_dotted_name_in_the_design_document_exists():
    names = dotted_names(DESIGN.read_text(encoding="utf-8"))
    assert len(names) >= 20, "docs/design.md should name the functions it describes as dcm_lightning.<…>"
    unresolved = [name for name in names if not resolves(name)]
    assert not unresolved, f"docs/design.md names code that does not exist: {unresolved}"


def test_no_tracked_file_outside_docs_mentions_the_old_design_file():
    try:
        listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    needle = OLD_DESIGN_FILE.encode()
    mentions = [
        path
        for path in listing.split("\0")
        if path and not path.startswith("docs/") and (ROOT / path).is_file() and needle in (ROOT / path).read_bytes()
    ]
    assert not mentions, f"these files still cite {OLD_DESIGN_FILE} instead of docs/design.md: {mentions}"
