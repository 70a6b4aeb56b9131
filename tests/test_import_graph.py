"""The import graph of ``weightgen/`` (docs/ARCHITECTURE.md, "Layers"), read with ``ast``.

Three rules: only ``stages/`` and ``cli/`` import the ``Workspace``; imports run one way,
cli -> stages -> library; and no two packages import each other, directly or around a cycle.
A package is the first name under ``weightgen`` (``gan``, ``stages``; a top-level module such as
``training`` is its own package). Each rule is checked on a small made-up tree as well, so a
checker that stopped finding anything would fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "weightgen"
LAYERS = {"cli": 2, "stages": 1}  # every other package is library (layer 0)


def package_of(module: str) -> str | None:
    """``weightgen.gan.base`` -> ``gan``; None for modules outside weightgen."""
    parts = module.split(".")
    return parts[1] if parts[0] == "weightgen" and len(parts) > 1 else None


def imports_of(path: Path, top_level_only: bool = False) -> list[tuple[str, list[str]]]:
    """(module, imported names) for each import statement of one file (``top_level_only``: those
    run when the file is imported, not the ones inside functions)."""
    found = []
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in tree.body if top_level_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [alias.name for alias in node.names]
            if node.module == "weightgen":  # from weightgen import gan
                found += [(f"weightgen.{name}", []) for name in names]
            else:
                found.append((node.module, names))
    return found


def source_files(root: Path) -> dict[str, Path]:
    """Each file of the tree by its path relative to ``root`` (posix)."""
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*.py"))}


def own_package(relative: str) -> str:
    return relative.split("/")[0].removesuffix(".py")


def package_graph(root: Path) -> dict[str, set[str]]:
    """package -> the other packages its files import."""
    graph: dict[str, set[str]] = {}
    for relative, path in source_files(root).items():
        source = own_package(relative)
        if source == "__init__":
            continue
        targets = graph.setdefault(source, set())
        for module, _ in imports_of(path):
            target = package_of(module)
            if target is not None and target != source:
                targets.add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of packages (first package repeated at the end), or None."""
    state: dict[str, str] = {}  # "open" while on the DFS path, "done" after

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs that run against cli -> stages -> library."""
    return sorted((source, target) for source, targets in graph.items() for target in targets
                  if LAYERS.get(target, 0) > LAYERS.get(source, 0))


def workspace_importers(root: Path) -> list[str]:
    """Files outside stages/ and cli/ that import the Workspace (or its module)."""
    offenders = []
    for relative, path in source_files(root).items():
        if own_package(relative) in LAYERS:
            continue
        for module, names in imports_of(path):
            if module.endswith(".workspace") or "Workspace" in names:
                offenders.append(relative)
    return offenders


def module_file(module: str, root: Path = ROOT) -> Path | None:
    """The file of a weightgen module or package (``weightgen.gan`` -> gan/__init__.py)."""
    parts = module.split(".")
    if parts[0] != "weightgen":
        return None
    base = root.joinpath(*parts[1:])
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    return path if path.is_file() else None


def eager_imports(module: str, root: Path = ROOT) -> set[str]:
    """Every module that importing ``module`` (a weightgen module) loads at once: the imports at
    the top of each weightgen file it reaches, followed through weightgen, others named as
    written (imports inside functions are lazy and not followed)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name, root)
        if path is None:
            continue
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # its packages
        for imported, names in imports_of(path, top_level_only=True):
            todo.append(imported)  # `from a.b import c`: c may be a module of a.b
            todo += [f"{imported}.{n}" for n in names if module_file(f"{imported}.{n}", root)]
    return seen


# The training stack: ~10 s of imports on 2 cores, which a config error must not wait for.
TRAINING_STACK = {"lightning", "diffusers", "transformers", "torchmetrics"}


# --- the real tree ------------------------------------------------------------------------------


def test_the_config_checks_load_no_training_stack():
    """A config error is printed before any stage is imported (weightgen.cli), so what the
    checks import is what a user waits for: torch, not Lightning and the models."""
    assert not {m.split(".")[0] for m in eager_imports("weightgen.config_checks")} & TRAINING_STACK
    # The walker does find the stack where it is: the inits import the data module (Lightning).
    assert "lightning" in eager_imports("weightgen.finetune.inits")


def test_only_stages_and_cli_import_the_workspace():
    assert workspace_importers(ROOT) == []


def test_no_two_packages_import_each_other():
    assert find_cycle(package_graph(ROOT)) is None


def test_imports_run_from_cli_to_stages_to_library():
    graph = package_graph(ROOT)
    assert upward_imports(graph) == []
    assert "stages" in graph["cli"] and "stages" not in graph["gan"]  # the graph is real


@pytest.mark.parametrize("package", ["bench", "finetune", "study", "diffusion"])
def test_a_library_package_imports_neither_stages_nor_cli(package):
    graph = package_graph(ROOT)
    assert graph[package] and not graph[package] & set(LAYERS)
    assert package in graph["stages"]  # the stages use it (the graph is real)


# --- the checkers catch what they look for -------------------------------------------------------


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def bad_tree(tmp_path) -> Path:
    """A made-up weightgen/ with a cycle (gan <-> diffusion), a library -> stages import and a
    library file that imports the Workspace."""
    write(tmp_path, "gan/base.py", "from weightgen.diffusion.bundle import WeightGenerator\n")
    write(tmp_path, "diffusion/bundle.py", "import weightgen.gan.base\n")
    write(tmp_path, "finetune/inits.py", "from weightgen.stages.workspace import Workspace\n")
    write(tmp_path, "stages/workspace.py", "from weightgen import gan\n")
    write(tmp_path, "cli/app.py", "from weightgen.stages.workspace import Workspace\n")
    return tmp_path


def test_checkers_find_a_cycle_an_upward_import_and_a_workspace_import(bad_tree):
    graph = package_graph(bad_tree)
    assert graph == {"gan": {"diffusion"}, "diffusion": {"gan"}, "finetune": {"stages"},
                     "stages": {"gan"}, "cli": {"stages"}}
    assert find_cycle(graph) in (["diffusion", "gan", "diffusion"], ["gan", "diffusion", "gan"])
    assert upward_imports(graph) == [("finetune", "stages")]
    assert workspace_importers(bad_tree) == ["finetune/inits.py"]


def test_a_longer_cycle_is_found_and_a_chain_is_not_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
