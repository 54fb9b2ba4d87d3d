"""Issue 13, items 8, 10 and 12: `number import` (BOM, repeated numbers, unknown columns, digits, progress only on a
terminal's stderr), output that survives a pipe (`--format table|json|csv|tsv` on every list command, full values
when stdout is not a terminal, rows streamed) and messages (short help, usage metavars, escaped and cut values,
`--json` on reserve/trial/release/config check). The 100 000-row figures are measured by bench/import_list.py.
"""
from __future__ import annotations

import csv
import io
import json
import re
import sys
from pathlib import Path

import click
import pytest
from test_cli_foundation import KYIV, KYIV2, MOSCOW, PLATINUM, Vpbx, error_line, invoke, numbers_in, ok, one_json

from vpbx.cli import main
from vpbx.commands import output
from vpbx.domain.validation import SHOWN_MAX, cut_long_words
from vpbx.services import numbers as number_service


@pytest.fixture
def vp(tmp_path: Path) -> Vpbx:
    v = Vpbx(tmp_path)
    ok(invoke(["--config", v.cfg, "init", "--dir", tmp_path]))
    return v


def _csv(vp: Vpbx, text: str, name: str = "n.csv", encoding: str = "utf-8") -> Path:
    path = vp.tmp / name
    path.write_bytes(text.encode(encoding))
    return path


# ---- item 8: number import --------------------------------------------------------------------------------------
def test_import_accepts_a_utf8_bom(vp: Vpbx) -> None:
    """Rule: a byte order mark (Excel's "CSV UTF-8") is not part of the first column's name."""
    path = _csv(vp, f"number,channels\n{KYIV},6\n", encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert one_json(vp("number", "import", path, "--json")) == {"imported": 1}
    assert numbers_in(vp) == [KYIV]


def test_import_names_both_lines_of_a_repeated_number(vp: Vpbx) -> None:
    """Rule: a number appears once in the file; the error names both lines (not "already exists")."""
    path = _csv(vp, f"number\n{KYIV}\n{KYIV2}\n{MOSCOW}\n{KYIV}\n")
    line = vp.fails("number", "import", path, needles=(KYIV, "line 2", "line 5", "nothing was imported"))
    assert "already exists" not in line
    assert numbers_in(vp) == []


def test_import_refuses_unknown_columns_naming_them_and_the_known_ones(vp: Vpbx) -> None:
    """Rule: every header name is a known column; a misspelt one is refused (with a suggestion), not ignored."""
    path = _csv(vp, f"number,chanels,colour\n{KYIV},8,red\n")
    line = vp.fails("number", "import", path, needles=("'chanels'", "did you mean 'channels'", "'colour'",
                                                       ", ".join(number_service.IMPORT_COLUMNS)))
    assert "unknown columns" in line
    path = _csv(vp, f"number,number\n{KYIV},{KYIV}\n", "twice.csv")
    vp.fails("number", "import", path, needles=("'number'", "more than once"))
    path = _csv(vp, f"number\n{KYIV},8\n", "extra.csv")
    vp.fails("number", "import", path, needles=("line 2", "2 cells"))
    assert numbers_in(vp) == []


@pytest.mark.parametrize("channels", ["٨", "۸", "８", "8.0", "+8", " 8"])
def test_import_channels_are_ascii_digits_only(vp: Vpbx, channels: str) -> None:
    """Rule: channels are ASCII digits; Arabic-Indic, Persian or full-width digits are refused (line named)."""
    path = _csv(vp, f"number,channels\n{KYIV},{channels}\n")
    vp.fails("number", "import", path, needles=("line 2", "channels", "whole number"))


def test_import_blank_lines_and_a_header_only_file(vp: Vpbx) -> None:
    path = _csv(vp, f"number\n{KYIV}\n\n{KYIV2}\n\n")
    assert one_json(vp("number", "import", path, "--json")) == {"imported": 2}
    vp.fails("number", "import", _csv(vp, "number\n", "empty.csv"), needles=("no rows",))


def test_import_error_line_is_the_rows_first_line(vp: Vpbx) -> None:
    """A quoted cell spanning lines: the error names the line the row starts on."""
    path = _csv(vp, f'number,comment\n{KYIV},one\n{KYIV2},"two\nlines"\n{MOSCOW},"a;b"\n')
    line = vp.fails("number", "import", path, needles=("line 3", KYIV2))
    assert "line 4" not in line


def test_import_piped_prints_only_the_result(vp: Vpbx) -> None:
    """Rule: the progress bar is drawn on stderr only when stderr is a terminal; piped, stdout is the result."""
    rows = "".join(f"+38044{2000000 + i:07d}\n" for i in range(1200))
    result = ok(vp("number", "import", _csv(vp, "number\n" + rows)))
    assert result.stdout == "Imported 1200 numbers\n"
    assert result.stderr == ""


def test_progress_covers_checking_and_writing(vp: Vpbx) -> None:
    """The service reports both stages, the writing one in chunks to the last row (the bar's whole length)."""
    from vpbx.storage.store import Store

    seen: list[tuple[str, int, int]] = []
    text = "number\n" + "".join(f"+38044{2000000 + i:07d}\n" for i in range(number_service.IMPORT_CHUNK + 10))
    with Store.open(vp.db) as store:
        number_service.import_csv(store, text, "x.csv", progress=lambda *a: seen.append(a))
    total = number_service.IMPORT_CHUNK + 10
    assert seen[-1] == ("importing", total, total)
    assert ("checking", total, total) in seen
    assert [s for s, _, _ in seen].index("importing") > [s for s, _, _ in seen].index("checking")
    assert len([s for s in seen if s[0] == "importing"]) == 2


def test_progress_bar_goes_to_stderr_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    err, out = io.StringIO(), io.StringIO()
    err.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(sys, "stdout", out)
    with output.progress_bar() as show:
        show("checking", 5, 10)
        show("importing", 10, 10)
    assert out.getvalue() == ""
    assert "importing" in err.getvalue()


def test_progress_bar_is_silent_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    with output.progress_bar() as show:
        show("checking", 5, 10)
    assert err.getvalue() == ""


# ---- item 10: output when piped ---------------------------------------------------------------------------------
def _long_comment_numbers(vp: Vpbx) -> str:
    comment = "a comment long enough that a table on an 80-column terminal would have to cut or wrap it " * 2
    ok(vp("number", "add", KYIV, "--comment", comment.strip()))
    ok(vp("number", "add", PLATINUM))
    return comment.strip()


def test_piped_list_is_tsv_with_full_values(vp: Vpbx) -> None:
    """Rule: stdout not a terminal and no --format: TSV, a header line and one line per row, nothing cut."""
    comment = _long_comment_numbers(vp)
    result = invoke(["--config", vp.cfg, "number", "list"], env={"COLUMNS": "40"})
    lines = ok(result).stdout.splitlines()
    assert lines[0].split("\t")[0] == "number" and len(lines) == 3
    rows = [dict(zip(lines[0].split("\t"), line.split("\t"), strict=True)) for line in lines[1:]]
    assert [r["number"] for r in rows] == [KYIV, PLATINUM]
    assert rows[0]["comment"] == comment


@pytest.mark.parametrize("fmt", ["json", "csv", "tsv", "table"])
def test_every_list_command_takes_format(vp: Vpbx, fmt: str) -> None:
    """Rule: every `list` command offers --format table|json|csv|tsv (and --json)."""
    ctx = click.Context(main)
    missing = []
    for name in main.list_commands(ctx):
        group = main.get_command(ctx, name)
        if not isinstance(group, click.Group) or "list" not in group.list_commands(ctx):
            continue
        opts = {o for p in group.get_command(ctx, "list").params for o in p.opts}
        if not {"--format", "--json"} <= opts:
            missing.append(name)
    assert missing == []
    _long_comment_numbers(vp)
    out = ok(vp("number", "list", "--format", fmt)).stdout
    if fmt == "json":
        assert [r["number"] for r in json.loads(out)] == [KYIV, PLATINUM]
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert [r["number"] for r in rows] == [KYIV, PLATINUM] and rows[0]["channels"] == "4"
    elif fmt == "tsv":
        assert out.splitlines()[1].startswith(f"{KYIV}\t")
    else:
        assert "┃ number" in out and KYIV in out      # a table piped on purpose: full values, no width to fit


def test_json_alias_and_conflict(vp: Vpbx) -> None:
    _long_comment_numbers(vp)
    assert ok(vp("number", "list", "--json")).stdout == ok(vp("number", "list", "--format", "json")).stdout
    assert ok(vp("number", "list", "--json", "--format", "json")).exit_code == 0
    result = vp("number", "list", "--json", "--format", "csv")
    assert result.exit_code == 2 and "contradict" in result.stderr


def test_streamed_json_is_one_document_and_empty_lists(vp: Vpbx) -> None:
    assert one_json(vp("number", "list", "--json")) == []
    assert ok(vp("number", "list", "--format", "csv")).stdout.startswith("number,type,")
    _long_comment_numbers(vp)
    doc = one_json(vp("number", "list", "--json"))
    assert len(doc) == 2 and doc[1]["number"] == PLATINUM


def test_tsv_escapes_tabs_and_line_breaks_so_a_row_stays_one_line() -> None:
    assert output._tsv("a\tb\nc\\d") == "a\\tb\\nc\\\\d"
    assert output._tsv(("x", "y")) == "x, y"
    assert output._tsv(None) == ""


def test_show_as_csv_is_one_row(vp: Vpbx) -> None:
    _long_comment_numbers(vp)
    rows = list(csv.DictReader(io.StringIO(ok(vp("number", "show", KYIV, "--format", "csv")).stdout)))
    assert len(rows) == 1 and rows[0]["number"] == KYIV


# ---- item 12: messages ------------------------------------------------------------------------------------------
def _commands() -> list[tuple[str, click.Command]]:
    ctx = click.Context(main)
    out: list[tuple[str, click.Command]] = []

    def walk(cmd: click.Command, path: str) -> None:
        out.append((path, cmd))
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                if sub is not None:
                    walk(sub, f"{path} {name}")

    walk(main, "vpbx")
    return out


def test_short_help_is_never_cut_at_an_abbreviation() -> None:
    """Rule: Click cuts a command's short help at the first ". "; no first sentence may contain one early
    (e.g., i.e., etc.): `number --help` must not show "Add an E.164 NUMBER (e.g."."""
    bad = []
    for path, cmd in _commands():
        text = cmd.get_short_help_str(10_000)
        if re.search(r"\b(e\.g|i\.e|etc|vs|cf|incl|approx)\.?$", text) or text.count("(") != text.count(")"):
            bad.append(f"{path}: {text}")
    assert bad == []


def test_usage_lines_show_no_python_parameter_names() -> None:
    """Rule: an argument's metavar is a word the user reads (NUMBER), never a Python name (NUMBER_)."""
    ctx = click.Context(main)
    bad = [f"{path}: {p.make_metavar(ctx)}" for path, cmd in _commands() for p in cmd.params
           if isinstance(p, click.Argument) and re.search(r"_(\W|$)", p.make_metavar(ctx))]
    assert bad == []
    assert "NUMBER_" not in ok(invoke(["number", "show", "--help"])).stdout


def test_an_error_shows_a_control_character_escaped(vp: Vpbx) -> None:
    """Rule: a refused value is quoted as given (escaped), not normalised into something that looks valid."""
    ok(vp("account", "add", "acme", "--email", "a@example.com"))
    ok(vp("number", "add", KYIV))
    line = vp.fails("number", "assign", KYIV, "--account", "acme", "--end-user", "Ivan\nPetrov",
                    needles=("'Ivan\\nPetrov'",))
    assert "Ivan Petrov" not in line


def test_caller_id_garbage_is_not_e164_not_a_missing_number(vp: Vpbx) -> None:
    line = vp.fails("sip", "add", "alice", "--caller-id", "garbage", needles=("caller ID", "'garbage'", "E.164"))
    assert "vpbx number add" not in line


def test_a_huge_argument_is_cut_in_every_error(vp: Vpbx) -> None:
    """Rule: no `Error:` line echoes an argument whole (vpbx errors and Click's usage errors alike)."""
    huge = "+" + "1" * 100_000
    line = vp.fails("number", "show", huge, needles=("chars)",))
    assert len(line) < 1000
    result = vp("number", "add", KYIV, "--direction", "x" * 100_000)
    assert result.exit_code == 2 and len(result.stderr) < 2000
    result = vp("number", "remove", "z" * 100_000)
    assert len(error_line(result)) < 1000


def test_cut_long_words() -> None:
    assert cut_long_words("number +380 not found") == "number +380 not found"
    cut = cut_long_words("number " + "9" * 5000 + " not found")
    assert cut.startswith("number " + "9" * (2 * SHOWN_MAX) + "... (5000 chars)") and cut.endswith(" not found")


def test_reserve_trial_release_and_config_check_take_json(vp: Vpbx) -> None:
    ok(vp("account", "add", "acme", "--email", "a@example.com"))
    ok(vp("number", "add", KYIV))
    ok(vp("number", "add", KYIV2))
    held = one_json(vp("number", "reserve", KYIV, "--account", "acme", "--json"))
    assert held[0]["number"] == KYIV and held[0]["status"] == "reserved"
    trial = one_json(vp("number", "trial", KYIV2, "--account", "acme", "--json"))
    assert trial["number"] == KYIV2 and trial["trial_until"]
    released = one_json(vp("number", "release", KYIV2, "--json"))
    assert released["number"] == KYIV2 and released["account"] == "acme" and released["available_on"]
    result = vp("config", "check", "--json")
    doc = json.loads(result.stdout)
    assert set(doc) == {"up_to_date", "diff"}
    assert result.exit_code == (0 if doc["up_to_date"] else 1)
