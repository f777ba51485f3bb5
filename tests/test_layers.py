"""The package's floors: every import, at module level or inside a function, points down (or sideways
within a floor), never up. Read from the source with `ast`, so a lazy import cannot hide."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import kernels_lib

PACKAGE = Path(kernels_lib.__file__).parent
#: Floor of each folder (the ground floor is the package's own top-level helper modules).
FLOORS = {"ground": 0, "sources": 1, "database": 2, "method": 3, "analysis": 4, "training": 5, "plots": 6,
          "publish": 7, "top": 8}
GROUND = {"errors", "paths", "fileio", "vocab", "preprocess", "records"}
TOP = {"__init__", "__main__", "cli", "api"}


def floor_of(module: str) -> int:
    """Floor of a dotted module name under kernels_lib ("kernels_lib.method.dog" -> 3)."""
    parts = module.split(".")[1:]
    if not parts:
        return FLOORS["top"]
    if parts[0] in FLOORS:
        return FLOORS[parts[0]]
    if parts[0] in GROUND:
        return FLOORS["ground"]
    if parts[0] in TOP:
        return FLOORS["top"]
    raise AssertionError(f"{module}: a module in no floor; add it to a folder (or to GROUND/TOP here)")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, name: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module) of every kernels_lib import in the source of module `name`; `from . import x`
    names x itself."""
    package = name if is_package else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("kernels_lib")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("kernels_lib"):
                target = node.module
            else:
                continue
            if node.module is None:     # from . import a, b: each name is a module (or __version__)
                found += [(node.lineno, f"{target}.{a.name}") for a in node.names if a.name != "__version__"]
            else:
                found.append((node.lineno, target))
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_floor():
    assert len(MODULES) > 40
    for path in MODULES:
        floor_of(module_name(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    here = floor_of(module_name(path))
    imports = imported_modules(path.read_text(), module_name(path), path.name == "__init__.py")
    upward = [f"line {line}: {target} (floor {floor_of(target)})" for line, target in imports
              if floor_of(target) > here]
    assert not upward, f"{module_name(path)} (floor {here}) imports from a higher floor: {upward}"


def test_the_checker_sees_upward_imports_lazy_or_not():
    """The rule can fail: the database importing the training loop inside a function (as extract once did)
    and a ground-floor module importing a folder with `from .. import` are both found."""
    lazy = "def read(run):\n    from ..training.loop import run_layers\n    return run_layers(run)\n"
    assert imported_modules(lazy, "kernels_lib.database.extract") == [(2, "kernels_lib.training.loop")]
    sideways = "from . import errors, method\nfrom .. import __version__\n"
    found = imported_modules(sideways, "kernels_lib.vocab")
    assert found == [(1, "kernels_lib.errors"), (1, "kernels_lib.method")]
    assert floor_of(found[1][1]) > floor_of("kernels_lib.vocab") >= floor_of(found[0][1])


def test_no_module_is_too_long_to_read_in_one_sitting():
    long = {str(p.relative_to(PACKAGE)): n for p in MODULES if (n := len(p.read_text().splitlines())) > 500}
    assert not long, f"modules over 500 lines: {long}"
