"""Defaults live in one place, the composed config: code reads it without restating them.

Every key the code reads is in every entry config (``conf/*.yaml``) and every experiment preset,
so a fallback in code (``cfg.get(key, default)``, ``OmegaConf.select(..., default=...)``) could
only hide a missing key or a second, diverging default. Both tests read the code with ``ast``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import compose_config
from omegaconf import DictConfig, OmegaConf

from weightgen.cli.app import CONFIG_DIR, CONFIG_NAME

ROOT = Path(__file__).resolve().parents[1]
CONF = Path(CONFIG_DIR)
CODE = sorted([*(ROOT / "weightgen").rglob("*.py"), *(ROOT / "experiments").rglob("*.py")])
# It checks whichever entry config it is handed (weightgen-apply's and -export's have none of a
# run's groups) and skips the knobs that config does not have: the config's own check.
READS_ANY_CONFIG = {"weightgen/config_checks.py"}
DICTCONFIG_METHODS = {"get", "items", "keys", "values", "pop", "copy"}
ENTRIES = sorted(p.stem for p in CONF.glob("*.yaml"))
PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
# Keys one option of a group has and the others do not, read only under that option.
OPTION_KEYS = {"concepts.path": "concepts=file (read when concepts.source is file)"}


def chain(node: ast.AST) -> list[str] | None:
    """``a.b.c`` -> ["a", "b", "c"]; None for anything but names and attributes."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def is_config_name(name: str) -> bool:
    return name == "cfg" or name.endswith("_cfg")


class ConfigReads(ast.NodeVisitor):
    """Per function: the names bound to a config (``cfg``, ``*_cfg``, ``.cfg``, DictConfig
    parameters and what is assigned from them), the fallbacks read from them and, for chains
    rooted at the run's whole config (``ws.cfg``, ``self.cfg``; in cli/ ``cfg``), the dotted keys
    read."""

    def __init__(self, whole_config_roots: tuple[tuple[str, ...], ...]):
        self.roots = whole_config_roots
        self.fallbacks: list[tuple[int, str]] = []
        self.keys: set[str] = set()
        self.aliases: dict[str, str | None] = {}  # name -> key prefix (None: a sub-tree unknown)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        outer = self.aliases
        self.aliases = dict(outer)
        for arg in [*node.args.args, *node.args.kwonlyargs]:
            annotation = ast.unparse(arg.annotation) if arg.annotation else ""
            if "DictConfig" in annotation or is_config_name(arg.arg):
                self.aliases[arg.arg] = "" if self._whole(arg.arg) else None
        self.generic_visit(node)
        self.aliases = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def _whole(self, name: str) -> bool:
        return (name,) in self.roots

    def key_of(self, node: ast.AST) -> str | None:
        """The dotted key a config expression stands for ("" = the whole config), or None for a
        config sub-tree whose place is not known; raises KeyError for a non-config expression."""
        parts = chain(node)
        if parts is None:
            raise KeyError
        for length in range(len(parts), 0, -1):
            if tuple(parts[:length]) in self.roots:
                return ".".join(parts[length:])
        if parts[0] in self.aliases:
            prefix = self.aliases[parts[0]]
            return None if prefix is None else ".".join(filter(None, [prefix, *parts[1:]]))
        if any(is_config_name(part) for part in parts):
            return None
        raise KeyError

    def _is_config(self, node: ast.AST) -> bool:
        try:
            self.key_of(node)
        except KeyError:
            return False
        return True

    def visit_Assign(self, node: ast.Assign) -> None:
        if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                self.aliases[node.targets[0].id] = self.key_of(node.value)
            except KeyError:
                self.aliases.pop(node.targets[0].id, None)
        self.generic_visit(node)

    def visit_For(self, node: ast.For) -> None:
        # `for name, spec in cfg.x.items()`: spec is a config sub-tree
        iterated = node.iter.func.value if (isinstance(node.iter, ast.Call) and isinstance(
            node.iter.func, ast.Attribute) and node.iter.func.attr == "items") else None
        if iterated is not None and self._is_config(iterated) and isinstance(node.target,
                                                                             ast.Tuple):
            for element in node.target.elts[1:]:
                if isinstance(element, ast.Name):
                    self.aliases[element.id] = None
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "get" and self._is_config(func.value):
            self.fallbacks.append((node.lineno, ast.unparse(node)))
        if (isinstance(func, ast.Attribute) and func.attr == "select"
                and any(k.arg == "default" for k in node.keywords)):
            self.fallbacks.append((node.lineno, ast.unparse(node)))
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        parts = chain(node)
        if parts is not None:
            try:
                key = self.key_of(node)
            except KeyError:
                key = None
            if key:
                segments = key.split(".")
                while segments and segments[-1] in DICTCONFIG_METHODS:
                    segments.pop()
                if segments:
                    self.keys.add(".".join(segments))
            return  # the chain's inner attributes are prefixes of this one
        self.generic_visit(node)


def whole_config_roots(path: Path) -> tuple[tuple[str, ...], ...]:
    roots = [("ws", "cfg"), ("self", "ws", "cfg")]
    if path.name == "workspace.py":
        roots.append(("self", "cfg"))
    if path.parent.name == "cli":
        roots.append(("cfg",))
    return tuple(roots)


def read(path: Path) -> ConfigReads:
    reads = ConfigReads(whole_config_roots(path))
    reads.visit(ast.parse(path.read_text()))
    return reads


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_no_code_restates_a_config_default():
    found = [f"{relative(path)}:{line}: {call}" for path in CODE
             if relative(path) not in READS_ANY_CONFIG for line, call in read(path).fallbacks]
    assert found == [], ("read these keys as cfg.<key>: the composed config defines them (give "
                         "a new key its default in conf/ with a comment)\n" + "\n".join(found))


def test_the_scan_finds_fallbacks_and_keys_through_aliases():
    """The scanner itself: a fallback through an alias, a parameter and a loop is found."""
    source = '''
def stage(ws, data: DictConfig):
    options = ws.cfg.diffusion.task_loss
    weight = options.get("weight", 0) + options.every + ws.cfg.diffusion.examples.k
    OmegaConf.select(ws.cfg, "seed", default=0)
    for name, spec in ws.cfg.logger.items():
        spec.get("group")
    return data.get("folder"), ws.cfg.bench.recipes, meta.get("x")
'''
    reads = ConfigReads(whole_config_roots(ROOT / "weightgen" / "stages" / "x.py"))
    reads.visit(ast.parse(source))
    assert [line for line, _ in reads.fallbacks] == [4, 5, 7, 8]
    assert {"diffusion.task_loss.every", "diffusion.examples.k", "bench.recipes",
            "logger"} <= reads.keys
    assert not any(key.startswith("meta") for key in reads.keys)


def entry_of(path: Path) -> str:
    """The entry config a module reads: its command's own (cli/<name>.py, stages/<name>.py with
    a conf/<name>.yaml) or, for everything shared, weightgen.yaml (and every config on it)."""
    return path.stem if path.stem in ENTRIES and path.stem != CONFIG_NAME else CONFIG_NAME


def keys_read() -> dict[str, set[str]]:
    """Entry config -> the keys its modules read from the run's whole config."""
    by_entry: dict[str, set[str]] = {}
    for path in CODE:
        if path.parent.name in ("cli", "stages") and relative(path) not in READS_ANY_CONFIG:
            by_entry.setdefault(entry_of(path), set()).update(read(path).keys)
    return by_entry


def compose_entry(name: str, overrides: list[str] = ()) -> DictConfig:
    return compose_config(list(overrides), name)


def missing(cfg: DictConfig, keys: set[str]) -> list[str]:
    """The keys that ``cfg`` does not have (a ``???`` value counts as there: the user gives it)."""
    absent = []
    for key in sorted(keys - set(OPTION_KEYS)):
        node = cfg
        for segment in key.split("."):
            if segment not in node.keys():
                absent.append(key)
                break
            node = node._get_node(segment)  # unresolved: paths interpolate Hydra's runtime
            if not isinstance(node, DictConfig):
                break  # a value, or a leaf's own attribute: nothing below to look for
    return absent


def composes_weightgen(entry: str) -> bool:
    """Whether the entry config is ``weightgen.yaml`` or builds on it (its defaults list)."""
    defaults = OmegaConf.load(CONF / f"{entry}.yaml").get("defaults") or []
    return entry == CONFIG_NAME or CONFIG_NAME in defaults


def configs() -> Iterator[tuple[str, list[str]]]:
    for entry in ENTRIES:
        yield entry, []
    for preset in PRESETS:
        yield CONFIG_NAME, [f"experiment={preset}"]


@pytest.mark.parametrize(("entry", "overrides"), list(configs()),
                         ids=[" ".join([e, *o]) for e, o in configs()])
def test_every_entry_config_and_preset_has_every_key_the_code_reads(entry, overrides):
    by_entry = keys_read()
    wanted = by_entry.get(entry, set()) | (by_entry[CONFIG_NAME] if composes_weightgen(entry)
                                           else set())
    assert wanted, f"no key read from {entry}.yaml: the scan lost its way"
    assert missing(compose_entry(entry, overrides), wanted) == []
