"""vpbx.dialplan does no I/O: its modules import only an allow-list of pure modules and call no I/O builtins."""
from __future__ import annotations

import ast
from pathlib import Path

import vpbx.dialplan

PACKAGE = Path(vpbx.dialplan.__file__).parent

ALLOWED = {
    "__future__", "dataclasses", "typing", "types", "re", "collections", "enum", "itertools", "functools",
    "vpbx.domain", "vpbx.dialplan",     # the domain layer is pure too (its own rule); dialplan imports nothing else
}
FORBIDDEN_CALLS = {"open", "print", "input", "exec", "eval", "compile", "__import__", "breakpoint"}


def _modules() -> list[Path]:
    files = sorted(PACKAGE.glob("*.py"))
    assert {"__init__.py", "model.py", "machine.py", "compile.py", "simulate.py"} <= {f.name for f in files}
    return files


def _imports(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "use absolute imports"
            names.append(node.module or "")
    return names


def _allowed(name: str) -> bool:
    return any(name == ok or name.startswith(ok + ".") for ok in ALLOWED)


def test_only_pure_imports() -> None:
    for path in _modules():
        tree = ast.parse(path.read_text(), filename=str(path))
        bad = [name for name in _imports(tree) if not _allowed(name)]
        assert not bad, f"{path.name} imports {bad}: vpbx.dialplan must stay pure (no I/O)"


def test_forbidden_modules_are_really_refused() -> None:
    for name in ("asyncio", "httpx", "websockets", "sqlite_utils", "sqlite3", "click", "rich", "logging",
                 "logging.handlers", "os", "socket", "time", "random", "subprocess", "pathlib"):
        assert not _allowed(name)


def test_no_io_builtins_called() -> None:
    for path in _modules():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in FORBIDDEN_CALLS, f"{path.name}:{node.lineno} calls {node.func.id}()"


def test_every_module_has_future_annotations_and_a_rule() -> None:
    for path in _modules():
        tree = ast.parse(path.read_text())
        doc = ast.get_docstring(tree)
        assert doc and "Rule:" in doc, f"{path.name} needs a module docstring stating its rule"
        assert any(isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in tree.body), path.name


def test_functions_are_annotated() -> None:
    for path in _modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert not isinstance(node, ast.AsyncFunctionDef), f"{path.name}: {node.name} is async"
                assert node.returns is not None, f"{path.name}:{node.lineno} {node.name} lacks a return annotation"
                args = node.args.args + node.args.kwonlyargs + node.args.posonlyargs
                for arg in args:
                    if arg.arg not in ("self", "cls"):
                        assert arg.annotation is not None, f"{path.name}:{node.lineno} {node.name}({arg.arg})"
