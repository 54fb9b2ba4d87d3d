"""What every command module shares: the context (config + store, opened on first use), the `--json` option, the
one output path (`emit`), and the small conversions of option text (dates, amounts, input files, money).

Rule: imports only click and the standard library at module level (`vpbx --help` loads this module); everything else
is imported where it is used.
"""
from __future__ import annotations

import json
import logging
import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

if TYPE_CHECKING:
    from vpbx.config import Config
    from vpbx.storage.store import Store


class Ctx:
    """The command line's state: where the config and the database are; both are opened on first use."""

    def __init__(self, config_path: str | None, db_path: str | None) -> None:
        self.config_path = config_path
        self.db_path = db_path
        self._cfg: Config | None = None
        self._store: Store | None = None

    @property
    def cfg(self) -> Config:
        if self._cfg is None:
            from vpbx.config import load_config

            self._cfg = load_config(self.config_path, self.db_path)
        return self._cfg

    @property
    def store(self) -> Store:
        if self._store is None:
            from vpbx.storage.store import Store

            self._store = Store.open(self.cfg.db)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


pass_ctx = click.make_pass_decorator(Ctx)
FORMATS = ("table", "json", "csv", "tsv")
_FORMAT_KEY = "vpbx.format"


def _format_given(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value not in (None, "json") and ctx.meta.get(_FORMAT_KEY) == "json":      # --json came first
        raise click.UsageError(f"--json and --format {value} contradict each other; give one of them")
    if value is not None or _FORMAT_KEY not in ctx.meta:
        ctx.meta[_FORMAT_KEY] = value
    return value


def _json_given(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    """`--json` is `--format json`; the command's `as_json` is true for either (Click handles options given on the
    command line first, so `--format` is known here)."""
    fmt = ctx.meta.get(_FORMAT_KEY)
    if value and fmt not in (None, "json"):
        raise click.UsageError(f"--json and --format {fmt} contradict each other; give one of them")
    if value:
        ctx.meta[_FORMAT_KEY] = "json"
    return bool(value) or fmt == "json"


def json_option(f: Any) -> Any:
    """`--format table|json|csv|tsv` and `--json` (the same as `--format json`), read by `emit`."""
    f = click.option("--json", "as_json", is_flag=True, callback=_json_given,
                     help="Print one JSON document (the same as --format json).")(f)
    return click.option("--format", "output_format", type=click.Choice(FORMATS), expose_value=False,
                        is_eager=False, callback=_format_given,
                        help="table (default on a terminal), json, csv or tsv (default when piped: full values, "
                             "one row a line).")(f)


def output_format(as_json: bool) -> str:
    """The layout `emit` uses: `--json`/`--format`, else a table on a terminal and TSV when stdout is piped."""
    if as_json:
        return "json"
    ctx = click.get_current_context(silent=True)
    fmt = ctx.meta.get(_FORMAT_KEY) if ctx is not None else None
    if fmt:
        return str(fmt)
    return "table" if sys.stdout.isatty() else "tsv"


def emit(data: Any, as_json: bool, columns: Sequence[str] | None = None, title: str | None = None) -> None:
    """The one output path. `data` is a record or dict (shown as fields), or a list or other iterable of them (rows).

    Layouts: `json` (one document), `csv` / `tsv` (a header line, then one line per row with every value whole; a
    single record is one row), `table` (rich; on a terminal by default). Piped output with no `--format` is TSV, so
    `grep` and `cut` see full values. Rows are written as they come (100 000 numbers list in a few seconds)."""
    from vpbx.domain.records import to_dict

    def plain(item: Any) -> Any:
        return to_dict(item) if hasattr(item, "__dataclass_fields__") else item

    fmt = output_format(as_json)
    single = isinstance(data, Mapping) or hasattr(data, "__dataclass_fields__")
    if fmt == "json":
        _emit_json(plain(data) if single else (plain(d) for d in data), single)
        return
    if fmt in ("csv", "tsv"):
        rows = iter([plain(data)]) if single else (plain(d) for d in data)
        _emit_delimited(rows, columns, fmt)
        return
    _emit_table(plain(data) if single else [plain(d) for d in data], columns, title)


def write_rows(rows: Iterable[Mapping[str, Any]], fmt: str, columns: Sequence[str], out: TextIO) -> None:
    """Rows (streamed) to `out` as `emit` writes them - `json` (one document, a list), `csv` or `tsv` (a header line,
    then one line per row): what an export (`vpbx calls export`) writes to stdout or a file."""
    if fmt == "json":
        _emit_json((dict(r) for r in rows), False, out)
    elif fmt in ("csv", "tsv"):
        _emit_delimited((dict(r) for r in rows), columns, fmt, out)
    else:
        raise ValueError(f"write_rows: no format {fmt!r}")


@contextmanager
def output_file(path: Path, what: str) -> Iterator[TextIO]:
    """A text file (UTF-8, mode 0600: it may hold personal data) written under a temp name beside `path` and renamed
    over it only when the block succeeds: `path` is replaced whole or left as it was. A path that cannot be written
    is a ValidationError naming it and the fix."""
    import secrets

    from vpbx.domain.errors import ValidationError
    from vpbx.domain.validation import shown

    where = f"{what} {shown(str(path))}"
    if path.is_dir():
        raise ValidationError(f"{where} is a directory; give a file name")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ValidationError(f"{where} cannot be written ({exc.strerror or exc}); give a file in a directory you "
                              "may write to") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise ValidationError(f"{where} cannot be written ({exc.strerror or exc}); give a file in a directory you "
                              "may write to") from None
    finally:
        tmp.unlink(missing_ok=True)


def _emit_json(data: Any, single: bool, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    if single:
        out.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
        return
    first = True
    for item in data:
        text = json.dumps(item, ensure_ascii=False, indent=2, default=str).replace("\n", "\n  ")
        out.write(("[\n  " if first else ",\n  ") + text)
        first = False
    out.write("[]\n" if first else "\n]\n")


def _emit_delimited(rows: Iterator[dict[str, Any]], columns: Sequence[str] | None, fmt: str,
                    out: TextIO | None = None) -> None:
    import csv

    out = out or sys.stdout
    first = next(rows, None)
    if first is None:
        if columns:
            out.write(("," if fmt == "csv" else "\t").join(columns) + "\n")
        return
    cols = list(columns or first.keys())
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(cols)
        writer.writerow([_cell(first.get(c)) for c in cols])
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in cols])
        return
    out.write("\t".join(cols) + "\n")
    out.write("\t".join(_tsv(first.get(c)) for c in cols) + "\n")
    for row in rows:
        out.write("\t".join(_tsv(row.get(c)) for c in cols) + "\n")


def _tsv(value: Any) -> str:
    """A TSV cell: the whole value, with backslash, tab and line breaks escaped (one row stays one line)."""
    text = _cell(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text.replace("\\", "\\\\"))


def _emit_table(data: Any, columns: Sequence[str] | None, title: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    # on a terminal the table fits its width; `--format table` into a pipe gets full values (no width to fit)
    console = Console(soft_wrap=True) if sys.stdout.isatty() else Console(soft_wrap=True, width=100_000)
    table = Table(title=title)
    if isinstance(data, list):
        cols = list(columns or (data[0].keys() if data else []))
        for col in cols:
            table.add_column(col)
        for row in data:
            table.add_row(*[_cell(row.get(c)) for c in cols])
        if not data:
            console.print(f"(no {title or 'rows'})")
            return
    else:
        table.add_column("field")
        table.add_column("value")
        for key, value in data.items():
            if columns is None or key in columns:
                table.add_row(key, _cell(value))
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) if not isinstance(v, (list, tuple)) else "=".join(map(str, v)) for v in value)
    return str(value)


@contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback `show(stage, done, total)` drawn on stderr when stderr is a terminal, else doing nothing;
    stdout keeps only the command's result. The job's two stages (checking, then writing, `total` rows each) are
    one bar from the first row checked to the last row written."""
    if not sys.stderr.isatty():
        yield lambda _stage, _done, _total: None
        return
    from rich.console import Console
    from rich.progress import Progress

    bar = Progress(console=Console(stderr=True), transient=True)
    stages: list[str] = []
    task: list[Any] = []

    def show(stage: str, done: int, total: int) -> None:
        if stage not in stages:
            stages.append(stage)
        if not task:
            bar.start()
            task.append(bar.add_task(stage, total=2 * max(total, 1)))
        # two stages (check, write) of `total` rows each: the bar reaches its end when the last row is written
        bar.update(task[0], description=stage, completed=(len(stages) - 1) * total + done, total=2 * max(total, 1))

    try:
        yield show
    finally:
        if task:
            bar.stop()


def without_password(record: Any) -> dict[str, Any]:
    """A SIP account or trunk as a dict without its password (listed and shown, never printed)."""
    from vpbx.domain.records import to_dict

    data = to_dict(record)
    data.pop("password")
    return data


# ---- option text -> values ------------------------------------------------------------------------------------
def today() -> date:
    """The clock's day (the server's local date): what every service gets as `today`."""
    return date.today()


def day(value: str | None) -> date:
    """`--date YYYY-MM-DD` (default today), parsed only; which days are allowed is the services' one rule
    (vpbx.services.lifecycle.effective_day: today or up to 31 days back), so pass it on as `on=` with today()."""
    from vpbx.domain.errors import ValidationError
    from vpbx.domain.validation import shown

    if value is None:
        return today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"date {shown(value)} is not YYYY-MM-DD; e.g. --date {today()}") from None


def now() -> datetime:
    return datetime.now(UTC)


def amount(text: str, allow_negative: bool = False) -> int:
    """An amount typed in major units ("2 500", "12.50") -> int minor units."""
    from vpbx.billing import parse_amount

    return parse_amount(text, allow_negative=allow_negative)


def read_text(path: str, what: str, fix: str = "save it as UTF-8", newline: str | None = None) -> str:
    """An input file's text; ValidationError naming the file when it is not UTF-8. `newline=""` keeps line ends as
    they are (what the csv module needs)."""
    from vpbx.domain.errors import ValidationError

    try:
        with open(path, encoding="utf-8", newline=newline) as fh:
            return fh.read()
    except UnicodeDecodeError:
        raise ValidationError(f"{what} {path} is not UTF-8 text; {fix}") from None


MAX_PASSWORD_FILE = 4096   # bytes: a password file is one line


def password_input(password: str | None, password_file: str | None, what: str) -> str | None:
    """`--password VALUE` or `--password-file FILE` (`-`: stdin, or a hidden prompt on a terminal) - at most one; None
    if neither. The file's text is its first line without the line end (UTF-8, a regular file, at most 4 KiB); the
    password rules themselves are the services' (what is read is checked like a typed password)."""
    from vpbx.domain.errors import ValidationError
    from vpbx.domain.validation import shown

    if password is not None and password_file is not None:
        raise click.UsageError("give --password or --password-file, not both")
    if password_file is None:
        return password
    if password_file == "-":
        if sys.stdin.isatty():
            return str(click.prompt(f"{what} password", hide_input=True, confirmation_prompt=True, err=True))
        data: bytes = sys.stdin.buffer.read(MAX_PASSWORD_FILE + 1)
        source = "stdin"
    else:
        source = f"password file {shown(password_file)}"
        try:
            if not stat.S_ISREG(os.stat(password_file).st_mode):
                raise ValidationError(f"{source} is not a regular file; give a file holding the password, or - for "
                                      "stdin")
            with open(password_file, "rb") as fh:
                data = fh.read(MAX_PASSWORD_FILE + 1)
        except OSError as exc:
            raise ValidationError(f"{source} cannot be read ({exc.strerror}); give a readable file, or - for "
                                  "stdin") from None
    if len(data) > MAX_PASSWORD_FILE:
        raise ValidationError(f"{source} is over {MAX_PASSWORD_FILE} bytes; it must hold the password alone, on one "
                              "line")
    try:
        text: str = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"{source} is not UTF-8 text; save the password as UTF-8") from None
    return text.removesuffix("\n").removesuffix("\r")


def money(c: Ctx, minor: int) -> str:
    from vpbx.billing import format_amount

    return format_amount(minor, c.cfg.billing.currency)


def flush_notices(c: Ctx) -> None:
    """Send the e-mail notices the command queued; the ones that could not go are said on stderr (kept to retry)."""
    from vpbx.services import lifecycle

    with quiet("vpbx.services.outbox"):     # each failed attempt is summed up below (and kept in `notices list`)
        result = lifecycle.flush_mail(c.store, c.cfg)
    if result["failed"]:
        warn(f"{result['failed']} e-mail notice(s) not sent yet (kept; see `vpbx notices list`)")


# ---- warnings on stderr -----------------------------------------------------------------------------------------
class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the moment (Click's test runner swaps it for every invocation)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class CliFormatter(logging.Formatter):
    """`Warning: ...` / `Error: ...`: one line, like the CLI's own messages; an exception adds its one-line reason."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        if not text.isprintable():
            text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape", "backslashreplace").decode("ascii")
                           for ch in text)
        label = "Error" if record.levelno >= logging.ERROR else record.levelname.capitalize()
        return f"{label}: {text}"


def _ours(record: logging.LogRecord) -> bool:
    return record.name == "root" or record.name == "vpbx" or record.name.startswith("vpbx.")


def setup_logging() -> None:
    """Once per process: warnings (and worse) logged by any vpbx module, or on the root logger, reach stderr as one
    `Warning: ...` line. Other libraries' records are left out (their noise is not the command's message).
    `vpbx serve` replaces this with its own log format."""
    root = logging.getLogger()
    if any(isinstance(h, _StderrHandler) for h in root.handlers):
        return
    handler = _StderrHandler()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(CliFormatter())
    handler.addFilter(_ours)
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)


@contextmanager
def quiet(name: str) -> Iterator[None]:
    """Only errors of logger `name` while the block runs: for a command that sums up those warnings itself."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)


def warn(message: str) -> None:
    """A warning of the command line itself: one `Warning: ...` line on stderr (through logging)."""
    logging.getLogger("vpbx.cli").warning("%s", message)
