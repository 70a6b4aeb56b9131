"""The method registry (issue 22): every bench method named once, in weightgen/bench/methods.py.

Code reads a method's init, needs and label, and the roles (reference, baseline, ceiling, ...),
from the registry; a method's name written out as a string anywhere else in ``weightgen/`` or
``experiments/`` is a second place to change when methods change. Docstrings may name methods
(they explain), as may configs, tests and docs.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from weightgen.bench.methods import METHODS, REFERENCE, method_named, method_of_init
from weightgen.errors import ConfigError
from weightgen.finetune.init_kinds import INIT_KINDS
from weightgen.finetune.inits import INITS

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("weightgen", "experiments")
REGISTRY = "weightgen/bench/methods.py"


def docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstring constants of a module, its classes and functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def method_literals(root: Path, folders: tuple[str, ...], names) -> list[str]:
    """``path:line: name`` for each string constant (f-string parts included, docstrings not)
    under ``root/folders`` that contains a method name as a word; the registry itself excluded."""
    word = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    hits = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if relative == REGISTRY:
                continue
            tree = ast.parse(path.read_text(), filename=relative)
            skipped = docstrings(tree)
            for node in ast.walk(tree):
                if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                        and id(node) not in skipped):
                    hits += [f"{relative}:{node.lineno}: {name}"
                             for name in word.findall(node.value)]
    return hits


def test_no_bench_method_name_is_a_literal_outside_the_registry():
    assert method_literals(ROOT, SCANNED, METHODS) == []


def test_the_scan_finds_names_in_strings_and_f_strings_but_not_in_docstrings(tmp_path):
    (tmp_path / "weightgen").mkdir()
    (tmp_path / "weightgen" / "stage.py").write_text(
        '"""Runs denoised_init (a docstring may name it)."""\n'
        'OURS = "denoised_init"\n'
        'def f(m):\n'
        '    """pix2pix_scratch sets the target."""\n'
        '    return f"drop trained_init from bench.methods, not {m}"\n'
        'LABEL = "denoised_initial"  # another word\n')
    assert method_literals(tmp_path, ("weightgen",), METHODS) == [
        "weightgen/stage.py:2: denoised_init", "weightgen/stage.py:5: trained_init"]


def test_the_light_list_of_init_kinds_is_inits_own():
    """init_kinds.INIT_KINDS lets the config checks name the kinds without the training stack;
    it must be INITS's keys, in order."""
    assert INIT_KINDS == tuple(INITS)


def test_every_method_starts_from_a_known_init_and_the_reference_from_none():
    assert METHODS[REFERENCE].init is None
    for method in METHODS.values():
        assert method.init is None or method.init in INITS, method.name
        assert method.label and method.title == f"{method.name} ({method.label})"
    assert [m.init for m in METHODS.values()].count(None) == 1  # only the reference
    inits = [m.init for m in METHODS.values() if m.init]
    assert len(inits) == len(set(inits))  # one method per init: method_of_init is defined
    assert method_of_init("mean").name == "mean_init" and method_of_init("random") is None


def test_a_name_that_is_no_method_is_a_config_error_naming_the_key_and_the_methods():
    with pytest.raises(ConfigError, match=r"bench.headline names 'pix2pix', which is no "
                                          r"benchmark method; use one of pix2pix_scratch, "):
        method_named("pix2pix", "bench.headline")
    assert method_named("trained_init").init == "trained"
