"""Phone numbers of the install: adding them (one or a CSV of many), changing and removing them, finding them.

Rule: a Number is built from user input in one place (`build`): the E.164 number is parsed (country, type, city,
operator, category from phonenumbers), every free text is checked by `vpbx.domain.validation`, and the direction and
channel rules come from `vpbx.domain.rules`. Every change is one transaction; an import is all or nothing. Numbers
that become available are announced to the waitlist in the same transaction (the caller sends the mail after it).
"""
from __future__ import annotations

import csv
import difflib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from vpbx.domain import numbers as phone
from vpbx.domain import rules
from vpbx.domain import validation as validate
from vpbx.domain.errors import ValidationError
from vpbx.domain.records import Number
from vpbx.services import lifecycle

if TYPE_CHECKING:
    from vpbx.config import Config
    from vpbx.storage.store import Store

STATUSES = ("available", "reserved", "pending_documents", "active", "suspended", "trial", "released")
IMPORT_COLUMNS = ("number", "channels", "direction", "trunk", "comment", "city", "operator", "type")

# progress(stage, done, total) while an import is checked ("checking") and written ("importing")
Progress = Callable[[str, int, int], None]
PROGRESS_EVERY = 500        # rows checked between two progress calls
IMPORT_CHUNK = 5000         # rows written between two progress calls (all in one transaction)
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


@dataclass(frozen=True)
class Added:
    """Numbers added, and how many waitlist e-mails that queued (send them with `lifecycle.flush_mail`)."""

    numbers: list[Number]
    notices: int


def build(number: str, *, channels: int | None = None, direction: str | None = None, trunk: str | None = None,
          comment: str | None = None, city: str | None = None, operator: str | None = None,
          type: str | None = None) -> Number:
    """A new Number from what a user typed; None takes the default (4 channels, inbound, what phonenumbers says)."""
    info = phone.parse(number)
    ntype = type or info.type
    if ntype not in phone.TYPES:
        raise ValidationError(f"number {info.number}: type {ntype!r} is not one of {', '.join(phone.TYPES)}")
    if direction is not None and direction not in rules.DIRECTIONS:
        raise ValidationError(f"number {info.number}: direction {direction!r} must be in, out or both")
    if channels is not None:
        rules.check_channels(info.number, channels)
    direction = direction or "in"
    for kind in dict.fromkeys((ntype, info.type)):        # a toll-free number stays inbound-only, whatever its type
        rules.check_direction(info.number, kind, direction)
    obj = f"number {info.number}"
    for field_name, value in (("comment", comment), ("city", city), ("operator", operator)):
        if value:
            validate.config_text(field_name, value, obj=obj)
    if trunk:
        validate.name(trunk, "trunk")
    return rules.check_number(Number(
        number=info.number, channels=channels or rules.MIN_CHANNELS, direction=direction, trunk=trunk,
        comment=comment or "", type=ntype, city=city if city is not None else info.city,
        operator=operator if operator is not None else info.operator, country=info.country, category=info.category))


def add(store: Store, record: Number) -> Added:
    """Add one number built with `build`; matching waitlist entries are told in the same transaction."""
    return add_many(store, [record])


def add_many(store: Store, records: Sequence[Number], progress: Progress | None = None) -> Added:
    """Add numbers in one transaction (all or none), written in chunks so that `progress("importing", done, total)`
    can follow a large import."""
    with store.write():
        for start in range(0, len(records), IMPORT_CHUNK):
            store.numbers.add_many(records[start:start + IMPORT_CHUNK])
            if progress is not None:
                progress("importing", min(start + IMPORT_CHUNK, len(records)), len(records))
        notices = lifecycle.notify_waitlist(store, records)
    return Added(list(records), len(notices))


def _whole_number(field: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise ValidationError(f"{field} {validate.shown(text)} is not a whole number")
    return int(text)


def build_row(row: Mapping[str, str | None]) -> Number:
    """One row of an import CSV (columns IMPORT_COLUMNS; only `number` is required; empty cells take the default)."""
    def cell(name: str) -> str | None:
        return row.get(name) or None

    channels = cell("channels")
    return build(cell("number") or "", channels=_whole_number("channels", channels) if channels else None,
                 direction=cell("direction"), trunk=cell("trunk"), comment=cell("comment"), city=cell("city"),
                 operator=cell("operator"), type=cell("type"))


def import_csv(store: Store, text: str, source: str, progress: Progress | None = None) -> Added:
    """Add every number of a CSV text with a header row (IMPORT_COLUMNS, `number` required). Every row is checked
    before anything is written; one bad row and nothing is imported (the error names `source` and the line).

    Rules: a UTF-8 byte order mark (what spreadsheets write for "CSV UTF-8") is not part of the header; every header
    name must be one of IMPORT_COLUMNS, once (a misspelt column is refused, not ignored); a row has no more cells
    than the header; a number appears once in the file (both lines are named). `progress(stage, done, total)` is
    called while the rows are checked ("checking") and then written ("importing")."""
    text = text.removeprefix("\ufeff")
    try:
        header = [name.strip() for name in next(csv.reader(_lines(text)), [])]
        total = sum(1 for cells in csv.reader(_lines(text)) if any(cells)) - 1      # rows (counted, not kept)
    except csv.Error as exc:
        raise ValidationError(f"{source}: not a readable CSV file ({exc}); nothing was imported") from None
    _check_header(source, header)
    records: list[Number] = []
    first_line: dict[str, int] = {}
    body = csv.reader(_lines(text))
    next(body)
    line_no, end = 1, 1
    for cells in body:
        line_no, end = end + 1, body.line_num                # a quoted cell may span lines: name the row's first
        if not any(cells):                                  # a blank line (often the last one) is no row
            continue
        if len(cells) > len(header):
            raise ValidationError(f"{source} line {line_no}: {len(cells)} cells but the header names "
                                  f"{len(header)} columns ({', '.join(header)}); nothing was imported")
        try:
            record = build_row(dict(zip(header, cells, strict=False)))
        except ValidationError as exc:
            raise ValidationError(f"{source} line {line_no}: {exc}; nothing was imported") from None
        seen = first_line.setdefault(record.number, line_no)
        if seen != line_no:
            raise ValidationError(f"{source}: number {record.number} is on line {seen} and line {line_no}; "
                                  f"keep one of them; nothing was imported")
        records.append(record)
        if progress is not None and (len(records) % PROGRESS_EVERY == 0 or len(records) == total):
            progress("checking", len(records), total)
    if not records:
        raise ValidationError(f"{source}: no rows under the header; nothing was imported")
    return add_many(store, records, progress)


def _lines(text: str) -> Iterator[str]:
    """The lines of `text` with their ends (\\n, \\r\\n or \\r, as the csv module splits them), one at a time: a
    StringIO of a large file would hold it again at 4 bytes a character."""
    return (m.group() for m in _LINE.finditer(text))


def _check_header(source: str, header: list[str]) -> None:
    """The header row names `number` and otherwise known columns, each once."""
    known = ", ".join(IMPORT_COLUMNS)
    unknown = [name for name in header if name not in IMPORT_COLUMNS]
    if "number" not in header:
        raise ValidationError(f"{source}: needs a header row with at least a 'number' column (the columns are "
                              f"{known}" + (f"; not {', '.join(map(validate.shown, unknown))}" if unknown else "")
                              + ")")
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name.lower(), IMPORT_COLUMNS, n=1)
            hints.append(f"{validate.shown(name)}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValidationError(f"{source}: unknown column{'s' if len(unknown) > 1 else ''} {', '.join(hints)} in the "
                              f"header; the columns are {known}; nothing was imported")
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise ValidationError(f"{source}: column {', '.join(map(repr, twice))} appears more than once in the header; "
                              f"nothing was imported")


def search(store: Store, *, category: str | None = None, type: str | None = None, city: str | None = None,
           operator: str | None = None, contains: str | None = None, status: str | None = None,
           account: str | None = None) -> list[Number]:
    if contains and not (contains.isascii() and contains.isdigit()):
        raise ValidationError(f"--contains {contains!r} must be digits only")
    return store.numbers.search(category=category, type=type, city=city, operator=operator, contains=contains,
                                status=status, account=account)


def update(store: Store, numbers: Sequence[str], *, channels: int | None = None, direction: str | None = None,
           comment: str | None = None, trunk: str | None = None, requires_documents: bool | None = None,
           lead_days: int | None = None, record_calls: bool | None = None, record_prompt: str | None = None,
           cfg: Config | None = None) -> list[Number]:
    """Change one or several numbers at once (all or nothing); None leaves a field as it is, trunk '' clears it.
    Call recording: `record_calls`, and `record_prompt` (a prompt installed in `cfg`'s sounds dir, or `none`)."""
    changes: dict[str, Any] = {}
    obj = f"number {', '.join(numbers)}"
    with validate.about(obj):
        if channels is not None:
            changes["channels"] = rules.check_channels(", ".join(numbers), channels)
        if direction is not None:
            if direction not in rules.DIRECTIONS:
                raise ValidationError(f"direction {direction!r} must be in, out or both")
            changes["direction"] = direction
        if comment is not None:
            changes["comment"] = validate.config_text("comment", comment, obj=obj)
        if trunk is not None:
            changes["trunk"] = validate.name(trunk, "trunk") if trunk else None
        if requires_documents is not None:
            changes["requires_documents"] = requires_documents
        if lead_days is not None:
            if not 0 <= lead_days <= 60:
                raise ValidationError(f"lead days {lead_days} is outside 0..60")
            changes["lead_days"] = lead_days
    if record_calls is not None or record_prompt is not None:
        if cfg is None:
            raise ValueError("changing call recording needs the config (the record prompt is looked up there)")
        from vpbx.services.recordings import setting_changes

        changes.update(setting_changes(cfg, obj, record_calls, record_prompt))
    if not changes:
        raise ValidationError(f"{validate.plain(obj)}: nothing to change")
    with store.write():
        for n in numbers:
            rules.check_number(replace(store.numbers.get(n), **changes))
        return store.numbers.update(numbers, **changes)


def remove(store: Store, number: str) -> None:
    """Remove a number of the install (refused while an account holds it or a group, IVR or phone uses it)."""
    store.numbers.remove(number)
