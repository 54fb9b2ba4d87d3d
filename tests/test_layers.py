"""The layering contract (issue 9), checked by an AST walk of every vpbx module: every import counts, at module level,
in a function, under `if TYPE_CHECKING:`, and `importlib.import_module("...")` with a literal name.

Layers, lowest first (a module may import its own layer, lower layers and the root package `vpbx`):

    vpbx.domain
    vpbx.dialplan   vpbx.billing     (one rank: neither imports the other)
    vpbx.config     vpbx.shipped     (one rank)
    vpbx.storage
    vpbx.services
    vpbx.asterisk
    vpbx.engine
    vpbx.ari_app
    vpbx.commands
    vpbx.cli
    vpbx.__main__

The pure layers (domain, dialplan, billing) also import nothing outside vpbx but PURE_ALLOWED: pure stdlib modules and
phonenumbers. Every violation is printed as `module -> imported (rule)`.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import vpbx

PACKAGE_DIR = Path(vpbx.__file__).resolve().parent
ROOT = "vpbx"

RANKS: tuple[tuple[str, ...], ...] = (
    ("vpbx.domain",),
    ("vpbx.dialplan", "vpbx.billing"),
    ("vpbx.config", "vpbx.shipped"),
    ("vpbx.storage",),
    ("vpbx.services",),
    ("vpbx.asterisk",),
    ("vpbx.engine",),
    ("vpbx.ari_app",),
    ("vpbx.commands",),
    ("vpbx.cli",),
    ("vpbx.__main__",),
)
PURE_LAYERS = ("vpbx.domain", "vpbx.dialplan", "vpbx.billing")
# Modules that compute and never touch a file, socket, process, clock-driven loop or terminal. Deliberately absent:
# os, io, pathlib, shutil, tempfile, sqlite3, socket, ssl, asyncio, subprocess, threading, logging, time, random,
# secrets, smtplib, email, http, urllib, zoneinfo (reads tz files), and every third-party I/O library
# (sqlite_utils, httpx, websockets, panoramisk, click, rich, soundfile, soxr, numpy, tomlkit).
PURE_ALLOWED = frozenset({
    "__future__", "abc", "bisect", "calendar", "collections", "copy", "csv", "dataclasses", "datetime", "decimal",
    "enum", "fractions", "functools", "hashlib", "heapq", "ipaddress", "itertools", "json", "math", "numbers",
    "operator", "re",
    "string", "textwrap", "tomllib", "types", "typing", "typing_extensions", "unicodedata",
    "phonenumbers",
})


@dataclass(frozen=True)
class Violation:
    module: str
    imported: str
    rule: str
    line: int = 0

    def __str__(self) -> str:
        return f"{self.module} -> {self.imported} ({self.rule})"


# ---- reading imports ------------------------------------------------------------------------------------------------
def module_name(path: Path) -> tuple[str, bool]:
    """vpbx/a/b.py -> ('vpbx.a.b', False); vpbx/a/__init__.py -> ('vpbx.a', True)."""
    rel = path.resolve().relative_to(PACKAGE_DIR.parent).with_suffix("")
    parts = list(rel.parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def all_modules() -> dict[str, Path]:
    paths = [p for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts]
    return dict(sorted((module_name(p)[0], p) for p in paths))


def _is_vpbx_module(name: str, known: set[str] | None) -> bool:
    if known is not None:
        return name in known
    base = PACKAGE_DIR.parent.joinpath(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def imports_of(source: str, module: str, is_package: bool = False,
               known: set[str] | None = None) -> list[tuple[str, int]]:
    """Every module `source` imports, as (absolute dotted name, line). `from pkg import name` counts as pkg.name when
    that is a vpbx module (so `from vpbx import cli` is seen as vpbx.cli); relative imports are resolved."""
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[:len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            submodules = [f"{base}.{a.name}" for a in node.names
                          if top(base) == ROOT and a.name != "*" and _is_vpbx_module(f"{base}.{a.name}", known)]
            if len(submodules) < len(node.names):   # some name is an attribute of `base` itself
                found.append((base, node.lineno))
            found += [(name, node.lineno) for name in submodules]
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if called in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                found.append((node.args[0].value, node.lineno))
    return found


# ---- the rules ------------------------------------------------------------------------------------------------------
def layer_of(name: str) -> str | None:
    for rank in RANKS:
        for layer in rank:
            if name == layer or name.startswith(layer + "."):
                return layer
    return None


def rank_of(layer: str) -> int:
    return next(i for i, rank in enumerate(RANKS) if layer in rank)


def top(name: str) -> str:
    return name.split(".")[0]


def check_import(module: str, imported: str, line: int = 0) -> list[Violation]:
    here = layer_of(module)
    if module != ROOT and here is None:
        return [Violation(module, imported, "module in no layer: add its package to RANKS in tests/test_layers.py",
                          line)]
    if top(imported) != ROOT:
        if here in PURE_LAYERS and top(imported) not in PURE_ALLOWED:
            return [Violation(module, imported, f"{here.removeprefix('vpbx.')} is pure: it imports no I/O library, "
                                                "only pure stdlib modules and phonenumbers", line)]
        return []
    if imported == ROOT:
        return []
    there = layer_of(imported)
    if there is None:
        return [Violation(module, imported, "imported module is in no layer", line)]
    if module == ROOT:
        return [Violation(module, imported, "the root package imports no layer (importing vpbx must stay cheap)",
                          line)]
    assert here is not None
    if there == here:
        return []
    mine, theirs = rank_of(here), rank_of(there)
    short_here, short_there = here.removeprefix("vpbx."), there.removeprefix("vpbx.")
    if theirs > mine:
        return [Violation(module, imported, f"{short_here} may not import {short_there}, a higher layer", line)]
    if theirs == mine:
        return [Violation(module, imported, f"{short_here} and {short_there} are independent: neither imports the "
                                            "other", line)]
    return []


def check_source(source: str, module: str, is_package: bool = False,
                 known: set[str] | None = None) -> list[Violation]:
    found: list[Violation] = []
    for imported, line in imports_of(source, module, is_package, known):
        found += check_import(module, imported, line)
    return found


def all_violations() -> list[Violation]:
    found: list[Violation] = []
    for name, path in all_modules().items():
        found += check_source(path.read_text(encoding="utf-8"), name, path.name == "__init__.py")
    return sorted(set(found), key=lambda v: (v.module, v.imported, v.line))


# ---- tests ----------------------------------------------------------------------------------------------------------
def test_the_layering_contract_holds() -> None:
    violations = all_violations()
    unique = sorted({str(v) for v in violations})
    for line in unique:
        print(line)
    assert not unique, f"{len(unique)} layering violation(s):\n" + "\n".join(unique)


def test_every_layer_exists_and_every_module_has_one() -> None:
    modules = all_modules()
    for rank in RANKS:
        for layer in rank:
            if layer == "vpbx.engine" and not any(layer_of(m) == layer for m in modules):
                continue  # being built (issue 9); once it has a module, it is checked like the others
            assert any(layer_of(m) == layer for m in modules), f"layer {layer} has no module"
    assert [m for m in modules if m != ROOT and layer_of(m) is None] == []


SYNTHETIC = '''
from __future__ import annotations
import re
from typing import TYPE_CHECKING
import sqlite3
from vpbx.domain.errors import ValidationError
from vpbx import STASIS_APP
if TYPE_CHECKING:
    from vpbx.storage.store import Store
def f():
    import httpx
    from vpbx import services
    from ..billing import money
    from . import model
    import importlib
    importlib.import_module("vpbx.cli")
'''


def test_the_checker_catches_violations_in_a_synthetic_module() -> None:
    known = {"vpbx.services", "vpbx.billing.money", "vpbx.dialplan.model", "vpbx.storage.store", "vpbx.cli",
             "vpbx.domain.errors"}
    found = {str(v) for v in check_source(SYNTHETIC, "vpbx.dialplan.compile", known=known)}
    assert found == {
        "vpbx.dialplan.compile -> sqlite3 (dialplan is pure: it imports no I/O library, only pure stdlib modules and "
        "phonenumbers)",
        "vpbx.dialplan.compile -> httpx (dialplan is pure: it imports no I/O library, only pure stdlib modules and "
        "phonenumbers)",
        "vpbx.dialplan.compile -> importlib (dialplan is pure: it imports no I/O library, only pure stdlib modules "
        "and phonenumbers)",
        "vpbx.dialplan.compile -> vpbx.storage.store (dialplan may not import storage, a higher layer)",
        "vpbx.dialplan.compile -> vpbx.services (dialplan may not import services, a higher layer)",
        "vpbx.dialplan.compile -> vpbx.billing.money (dialplan and billing are independent: neither imports the "
        "other)",
        "vpbx.dialplan.compile -> vpbx.cli (dialplan may not import cli, a higher layer)",
    }, "\n".join(sorted(found))


def test_the_checker_allows_what_the_contract_allows() -> None:
    known = {"vpbx.domain.errors", "vpbx.storage.store", "vpbx.services.flows", "vpbx.asterisk.deploy"}
    source = '''
import json, click
import vpbx
from vpbx import __version__
from vpbx.domain.errors import VpbxError
from vpbx.storage.store import Store
from vpbx.services import flows
def g():
    from vpbx.asterisk import deploy
'''
    assert check_source(source, "vpbx.commands.number", known=known) == []
    # the same source one layer lower is refused for the asterisk import only
    assert [str(v) for v in check_source(source, "vpbx.services.numbers", known=known)] == [
        "vpbx.services.numbers -> vpbx.asterisk.deploy (services may not import asterisk, a higher layer)"]


def test_a_module_outside_every_layer_is_reported() -> None:
    assert [str(v) for v in check_source("import os\n", "vpbx.misc")] == [
        "vpbx.misc -> os (module in no layer: add its package to RANKS in tests/test_layers.py)"]
    assert [str(v) for v in check_source("from vpbx.misc import x\n", "vpbx.cli", known={"vpbx.misc"})] == [
        "vpbx.cli -> vpbx.misc (imported module is in no layer)"]
