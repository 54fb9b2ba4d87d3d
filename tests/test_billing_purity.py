"""vpbx.billing stays pure: no SQL, no I/O, no Click, no asyncio, no floats, no true division; annotated; a rule."""
from __future__ import annotations

import ast
from pathlib import Path

import vpbx.billing

PACKAGE = Path(vpbx.billing.__file__).parent
ALLOWED = {
    "__future__", "dataclasses", "typing", "collections.abc", "re", "datetime", "calendar", "csv", "tomllib",
    "phonenumbers", "vpbx.domain", "vpbx.billing",     # billing imports only the (pure) domain layer
}
FORBIDDEN_CALLS = {"open", "print", "input", "exec", "eval", "compile", "__import__", "breakpoint", "float"}


def _modules() -> list[Path]:
    files = sorted(PACKAGE.glob("*.py"))
    assert {f.name for f in files} == {"__init__.py", "money.py", "periods.py", "tariff.py", "orders.py", "rating.py",
                                        "outbound.py", "prepaid.py"}
    return files


def _trees() -> list[tuple[str, ast.Module]]:
    return [(p.name, ast.parse(p.read_text(encoding="utf-8"), filename=str(p))) for p in _modules()]


def _allowed(name: str) -> bool:
    return any(name == ok or name.startswith(ok + ".") for ok in ALLOWED)


def test_only_pure_imports() -> None:
    for name, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                bad = [a.name for a in node.names if not _allowed(a.name)]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{name}: use absolute imports"
                bad = [] if _allowed(node.module or "") else [node.module]
            else:
                continue
            assert not bad, f"{name}:{node.lineno} imports {bad}: vpbx.billing must stay pure"


def test_forbidden_modules_are_really_refused() -> None:
    for mod in ("asyncio", "sqlite3", "sqlite_utils", "click", "rich", "os", "pathlib", "io", "socket", "time",
                "random", "subprocess", "vpbx.storage.store", "vpbx.cli", "vpbx.config"):
        assert not _allowed(mod)


def test_no_io_builtins_floats_or_true_division() -> None:
    for name, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in FORBIDDEN_CALLS, f"{name}:{node.lineno} calls {node.func.id}()"
            assert not (isinstance(node, ast.Constant) and isinstance(node.value, float)), \
                f"{name}:{node.lineno} has a float literal; money is int minor units"
            assert not (isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, ast.Div)), \
                f"{name}:{node.lineno} divides with /; use // or div_half_up"


def test_every_module_has_future_annotations_and_a_rule() -> None:
    for name, tree in _trees():
        doc = ast.get_docstring(tree)
        assert doc and "Rule:" in doc and "I/O" in doc and "SQL" in doc, f"{name} needs a docstring stating its rule"
        assert any(isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in tree.body), name


def test_functions_are_annotated() -> None:
    for name, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert not isinstance(node, ast.AsyncFunctionDef), f"{name}: {node.name} is async"
                assert node.returns is not None, f"{name}:{node.lineno} {node.name} lacks a return annotation"
                for arg in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                    if arg.arg not in ("self", "cls"):
                        assert arg.annotation is not None, f"{name}:{node.lineno} {node.name}({arg.arg})"


def test_public_names_are_exported() -> None:
    for name in ("parse_amount", "format_amount", "renewal_on", "add_months", "period_end", "prorated",
                 "last_day_of_month", "Plan", "Tariff", "parse_tariff", "area_code", "connection_fee", "monthly_fee",
                 "OrderLine", "Quote", "quote", "renewal_charge", "next_period", "PrefixTable", "billable_units",
                 "call_cost", "parse_rates_csv", "OutboundRate", "OutboundRateTable", "billed_seconds",
                 "outbound_cost", "affordable_seconds", "parse_outbound_rates_csv", "UNLIMITED_SECONDS"):
        assert name in vpbx.billing.__all__ and hasattr(vpbx.billing, name), name
