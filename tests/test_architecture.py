"""The house's floors: every import inside the package points down (or stays in its own package), and
no two modules import each other, directly or through others. The layer order is written here once;
docs/design.md §6 shows the same block, and a test keeps the two equal."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dcm_lightning"
DESIGN = PACKAGE.parent / "docs" / "design.md"

# Lowest first. A unit is a top-level module or sub-package of dcm_lightning.
LAYERS = """
0 errors media randomness conditioning
1 diffusion networks experts moving_shapes distributed context_parallel strategies pipelines
2 checkpoints sampling losses detail_lora
3 teachers lightning_cli
4 data students
5 modules
6 generation
7 evaluation analysis
8 tools callbacks
9 cli
10 __main__
"""


def layer_of() -> dict[str, int]:
    layers = {}
    for line in LAYERS.strip().splitlines():
        number, *units = line.split()
        layers |= dict.fromkeys(units, int(number))
    return layers


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_imports() -> dict[str, set[str]]:
    """Every module's imports of other dcm_lightning modules, at any depth of its code (a function-level
    import is still an arrow)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dcm_lightning"):
                candidates = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
                targets |= {c for c in candidates if c in modules}
            elif isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names if alias.name in modules}
        edges[name] = targets - {name}
    return edges


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "dcm_lightning"


def test_every_unit_of_the_package_has_a_layer():
    units = {unit(m) for m in package_imports()} - {"dcm_lightning"}
    assert units <= set(layer_of()), f"units without a layer in LAYERS: {sorted(units - set(layer_of()))}"


def test_imports_point_down_the_layers():
    layers = layer_of()
    upward = [
        f"{source} -> {target}"
        for source, targets in package_imports().items()
        for target in targets
        if unit(target) != "dcm_lightning"
        and unit(source) != "dcm_lightning"
        and unit(source) != unit(target)
        and layers[unit(target)] >= layers[unit(source)]
    ]
    assert not upward, "imports that do not point to a lower layer:\n" + "\n".join(sorted(upward))


def test_no_module_imports_itself_through_others():
    edges = package_imports()
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*stack[stack.index(target) :], target]))
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_layer_check_finds_an_upward_import(tmp_path, monkeypatch):
    """The check is not vacuous: a diffusion module importing a training module is reported."""
    fake = tmp_path / "dcm_lightning"
    (fake / "diffusion").mkdir(parents=True)
    (fake / "modules").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "diffusion" / "__init__.py").write_text("from dcm_lightning.modules import thing\n")
    (fake / "modules" / "__init__.py").write_text("from dcm_lightning.diffusion import other\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    with pytest.raises(AssertionError, match="dcm_lightning.diffusion -> dcm_lightning.modules"):
        test_imports_point_down_the_layers()
    with pytest.raises(AssertionError, match="import cycles"):
        test_no_module_imports_itself_through_others()


def test_the_design_document_shows_this_layer_order():
    block = re.search(r"```layers\n(.*?)```", DESIGN.read_text(), re.S)
    assert block is not None, "docs/design.md §6 has no ```layers block"
    assert block.group(1).split() == LAYERS.split()
