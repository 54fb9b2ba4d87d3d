"""What every command module shares: the context (config + store, opened on first use), the `--json` option, the
one output path (`emit`), and the small conversions of option text (dates, amounts, input files, money).

Rule: imports only click and the standard library at module level (`vpbx --help` loads this module); everything else
is imported where it is used.
"""
from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

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
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of a table.")


def emit(data: Any, as_json: bool, columns: Sequence[str] | None = None, title: str | None = None) -> None:
    """One output path: JSON document, or a rich table (list of dicts) / key-value table (dict)."""
    from vpbx.domain.records import to_dict

    def plain(item: Any) -> Any:
        return to_dict(item) if hasattr(item, "__dataclass_fields__") else item

    data = [plain(d) for d in data] if isinstance(data, list) else plain(data)
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=True)
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


def without_password(record: Any) -> dict[str, Any]:
    """A SIP account or trunk as a dict without its password (listed and shown, never printed)."""
    from vpbx.domain.records import to_dict

    data = to_dict(record)
    data.pop("password")
    return data


# ---- option text -> values ------------------------------------------------------------------------------------
def day(value: str | None) -> date:
    """`--date YYYY-MM-DD` (default today)."""
    from vpbx.domain.errors import ValidationError
    from vpbx.domain.validation import shown

    if value is None:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"date {shown(value)} is not YYYY-MM-DD; e.g. --date 2026-11-22") from None


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
