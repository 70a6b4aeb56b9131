"""Every config key an error message suggests exists (issue 14, item 13).

A hint such as ``use another data.pairs_dir`` (the key is ``paths.pairs_dir``) sends a user to a
key that Hydra then refuses. This test reads the messages of every ``raise`` (and log warning) in
``weightgen/``, finds the overrides they suggest (``key=value``) and the config keys they name
(``paths.pairs_dir``), and composes each against the config of the command that shows it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from helpers import compose_config
from omegaconf import OmegaConf

import weightgen
from weightgen import errors

PACKAGE = Path(weightgen.__file__).parent
# The config a file's messages are shown under (default: conf/weightgen.yaml, which the
# generate, finetune and new-concept configs include).
CONFIG_OF_FILE = {
    "stages/new_concept.py": ("new_concept",),
    "stages/new_concept_init.py": ("new_concept",),
    "data/pair_folder.py": ("new_concept",),
    "editor/apply_files.py": ("apply",),
    "editor/sizing.py": ("apply",),
    "editor/model_folder.py": ("apply", "export"),
    "editor/export.py": ("export",),
    "stages/generate.py": ("generate",),
    "stages/finetune.py": ("finetune",),
}
# Placeholders for an interpolated value: an echo of the bad value (``tile={tile} must be``), not a
# suggestion, so not checked.
INTERPOLATED = "\x00"
OVERRIDE = re.compile(
    r"(?<![\w.\-/{<])(?P<key>[a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)*)="
    r"(?P<value>\"[^\"]*\"|'[^']*'|\[[^\]]*\]|[^\s,;)`]*)"
)
# Config keys named without a value ("use another paths.pairs_dir"): dotted, under a top-level node.
TOP_LEVEL = ("paths", "concepts", "data", "editor", "text_encoder", "gan", "adapter", "builder",
             "tokenizer", "denoiser", "diffusion", "bench", "study", "metrics", "trainer",
             "logger")
NAMED_KEY = re.compile(rf"(?<![\w.\-/])(?:{'|'.join(TOP_LEVEL)})(?:\.[a-z0-9_]+)+(?![\w.=(])")


def _text(node: ast.AST) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(v) if isinstance(v, ast.Constant) else INTERPOLATED
                       for v in node.values)
    if isinstance(node, ast.BinOp):  # "..." + "; ".join(...)
        return _text(node.left) + _text(node.right)
    return ""


def _messages(tree: ast.AST) -> list[str]:
    """The text of each raised error and each log warning/error call."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            call = node.exc
        elif isinstance(node, ast.Return) and isinstance(node.value, ast.Call):
            call = node.value  # an error built by a helper (text/pretrained.py load_error)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("warning", "error"):
            call = node
        else:
            continue
        found.append("".join(_text(arg) for arg in call.args))
    return found


def suggested_keys() -> list[tuple[str, str, str]]:
    """(file, config name, override to compose) for every key a message suggests or names."""
    cases = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for message in _messages(ast.parse(path.read_text(encoding="utf-8"))):
            for match in OVERRIDE.finditer(message):
                value = match["value"]
                if value.startswith((INTERPOLATED, "%")):
                    continue
                placeholder = value.startswith("<") or "..." in value  # only the key is checked
                override = match["key"] if placeholder else f"{match['key']}={value}"
                for config in CONFIG_OF_FILE.get(rel, ("weightgen",)):
                    cases.append((rel, config, override))
            for match in NAMED_KEY.finditer(message):
                cases.append((rel, "weightgen", match[0]))
    return sorted(set(cases))


CASES = suggested_keys()


def user_messages(tree: ast.AST) -> list[str]:
    """The text of each raised user error (a ``weightgen.errors`` class) and log warning."""
    user_errors = {name for name, value in vars(errors).items()
                   if isinstance(value, type) and issubclass(value, errors.WeightgenError)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            if getattr(node.exc.func, "id", None) in user_errors:
                found.append("".join(_text(arg) for arg in node.exc.args))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("warning", "error"):
            found.append("".join(_text(arg) for arg in node.args))
    return found


def config_key_paths() -> set[str]:
    """Every key path (node or leaf) of the configs messages are shown under."""
    paths: set[str] = set()

    def walk(node, prefix: str) -> None:
        for key, value in node.items():
            paths.add(prefix + str(key))
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")

    for name in ("weightgen", *{c for configs in CONFIG_OF_FILE.values() for c in configs}):
        walk(OmegaConf.to_container(compose_config([], name)), "")
    return paths


# A word in snake_case or a dotted name: what a message uses to name a config key (not a
# mapping key of an example value, ``{lr_scheduler: {warmup_steps: 20}}``).
KEY_LIKE = re.compile(r"(?<![\w.\-/])[a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)*(?![\w(:])")


def loose_key_names() -> list[tuple[str, str, list[str]]]:
    """(file, word, full keys) where a user message names a key by its tail (``max_length`` for
    ``text_encoder.max_length``): the user cannot tell which key, nor pass it as an override."""
    paths = config_key_paths()
    tails: dict[str, list[str]] = {}
    for path in sorted(paths):
        parts = path.split(".")
        for start in range(1, len(parts)):
            tails.setdefault(".".join(parts[start:]), []).append(path)
    loose = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for message in user_messages(ast.parse(path.read_text(encoding="utf-8"))):
            for word in KEY_LIKE.findall(message):
                if ("_" in word or "." in word) and word in tails and word not in paths:
                    loose.append((rel, word, tails[word]))
    return loose


def test_user_errors_name_config_keys_in_full():
    assert loose_key_names() == []


def test_the_loose_key_scan_finds_a_bare_key_name(monkeypatch):
    """The scan itself: a message naming ``max_length`` alone is found (and its full key)."""
    original = ast.parse

    def with_a_loose_hint(source, *args, **kwargs):
        tree = original(source, *args, **kwargs)
        if "class TextEncoder" in source:
            tree.body.append(original('raise ConfigError(f"max_length={n} is too small")').body[0])
        return tree

    monkeypatch.setattr(ast, "parse", with_a_loose_hint)
    assert ("text/base.py", "max_length", ["text_encoder.max_length"]) in loose_key_names()


def test_the_scan_finds_the_hints_it_is_meant_to_check():
    overrides = {case[2] for case in CASES}
    assert "builder.shard=0/4" in overrides  # weights/store.py
    assert "overwrite=true" in overrides  # editor/apply_files.py
    assert "paths.pairs_dir" in overrides  # data/pairs.py, a key named without a value
    assert len(CASES) > 20


@pytest.mark.parametrize(("file", "config", "override"), CASES,
                         ids=[f"{f}:{o}" for f, _, o in CASES])
def test_every_suggested_key_composes(file, config, override):
    if "=" in override:
        compose_config([override], config)  # Hydra refuses a key the config lacks
        return
    sentinel = object()  # a key named without a value: it must be in the config
    found = OmegaConf.select(compose_config([], config), override, default=sentinel)
    assert found is not sentinel, f"{file} names {override}, which conf/{config}.yaml lacks"
