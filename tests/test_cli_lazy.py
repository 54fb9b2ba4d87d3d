"""The root group loads each command group lazily from vpbx.commands (issue 9): the table in vpbx.cli names every
command's module and short help, `vpbx --help` lists them all without importing one, and invoking a command imports
only its own module.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from vpbx import cli

COMMANDS_DIR = Path(cli.__file__).resolve().parent / "commands"


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("VPBX_CONFIG", "VPBX_DB", "PYTHONSTARTUP")}


def _loaded_after(argv: list[str]) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    code = ("import sys, json\n"
            f"sys.argv = ['vpbx', *{argv!r}]\n"
            "from vpbx.cli import main\n"
            "try:\n    main()\n"
            "except SystemExit:\n    pass\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('vpbx.commands'))), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    return json.loads(proc.stderr.strip().splitlines()[-1]), proc


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_the_table_matches_the_command(name: str) -> None:
    target, short_help = cli.COMMANDS[name]
    command = cli.load(target)
    assert command.name == name, f"{target} is named {command.name!r}, the table says {name!r}"
    assert (command.help or "").strip().splitlines()[0] == short_help, f"update the short help of {name} in vpbx.cli"


def test_every_command_module_is_in_the_table() -> None:
    modules = {p.stem for p in COMMANDS_DIR.glob("*.py")} - {"__init__", "output"}
    tabled = {target.split(":")[0].rsplit(".", 1)[1] for target, _ in cli.COMMANDS.values()}
    assert modules == tabled


def test_help_lists_every_command_from_the_table_without_loading_one() -> None:
    loaded, proc = _loaded_after(["--help"])
    assert proc.returncode == 0 or proc.stdout.startswith("Usage:")
    assert loaded == ["vpbx.commands", "vpbx.commands.output"]
    listed = {line.split()[0] for line in proc.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == set(cli.COMMANDS)


def test_the_table_gives_the_same_help_as_the_loaded_commands() -> None:
    lazy = CliRunner().invoke(cli.main, ["--help"], env={"COLUMNS": "100"}).stdout
    group = cli.VpbxGroup(name="vpbx", params=cli.main.params, help=cli.main.help)
    for name in cli.COMMANDS:
        group.commands[name]                       # load every command: the help comes from the commands themselves
    assert all(group.commands.short_help(name) is None for name in cli.COMMANDS)
    loaded = CliRunner().invoke(group, ["--help"], prog_name="main", env={"COLUMNS": "100"}).stdout
    assert lazy == loaded


@pytest.mark.parametrize("argv, module", [(["number", "--help"], "vpbx.commands.numbers"),
                                          (["account", "add", "--help"], "vpbx.commands.accounts"),
                                          (["init", "--help"], "vpbx.commands.config")])
def test_a_command_loads_only_its_own_module(argv: list[str], module: str) -> None:
    loaded, _proc = _loaded_after(argv)
    assert loaded == sorted(["vpbx.commands", "vpbx.commands.output", module])


def test_no_command_module_imports_the_cli() -> None:
    for path in COMMANDS_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "vpbx.cli" and not (node.module == "vpbx" and
                                                          any(a.name == "cli" for a in node.names)), path
            elif isinstance(node, ast.Import):
                assert all(a.name != "vpbx.cli" for a in node.names), path


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli.main, ["nosuch"])
    assert result.exit_code == 2 and "No such command 'nosuch'" in result.stderr


@pytest.mark.parametrize("arg", ["bad\udcffbyte", "nul\x00byte"])
def test_arguments_no_os_can_pass_are_one_error_line(arg: str) -> None:
    result = CliRunner().invoke(cli.main, ["number", "show", arg])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: argument "), result.stderr


def test_error_lines_escape_every_line_break() -> None:
    assert cli._one_line("a\nb\rc\u2028d\x85e\udcfff") == "a\\nb\\rc\\u2028d\\x85e\\udcfff"
    assert cli._one_line("Кириллица [ok]") == "Кириллица [ok]"


def test_the_root_group_is_a_click_group() -> None:
    assert isinstance(cli.main, click.Group) and isinstance(cli.main.commands, cli.LazyCommands)


def test_python_dash_m_vpbx_cli_runs_a_command(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "vpbx.cli", "--db", str(tmp_path / "x.db"), "number", "list",
                           "--json"], capture_output=True, text=True, env=_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []
