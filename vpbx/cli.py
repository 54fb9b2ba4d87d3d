"""`vpbx` command line: the root group only - global options, the `Error:` path, the version - and the table of
command groups, each loaded from its own module in `vpbx.commands` the first time it is used.

Rules: a VpbxError becomes one `Error: ...` line on stderr and an exit code from EXIT_CODES (1 bad input or state,
3 Asterisk unreachable or refusing; usage errors exit 2, from Click); `--json`
prints exactly one JSON document on stdout. `vpbx --help` imports no command module (the short help of every command
is kept in COMMANDS below; tests/test_cli_lazy.py checks it against the commands), so it starts fast. Nothing in
`vpbx.commands` imports this module.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import Any

import click

from vpbx.commands.output import Ctx

# name -> ("module:attribute", short help shown by `vpbx --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "account": ("vpbx.commands.accounts:account", "Customers' accounts: balance, ledger, statements."),
    "asterisk": ("vpbx.commands.asterisk:asterisk", "Add vpbx to a system Asterisk's config, and check that Asterisk."),
    "backup": ("vpbx.commands.backup:backup",
               "Write one archive (tar.gz, mode 0600) of the database, config, prompts and documents; online."),
    "billing": ("vpbx.commands.billing:billing", "The daily renewal job."),
    "block": ("vpbx.commands.blocklist:block",
              "Caller blocklist: refuse calls from numbers, prefixes or withheld callers."),
    "call": ("vpbx.commands.calls:call", "Dry-run call flows."),
    "calls": ("vpbx.commands.calls:calls", "Call records."),
    "config": ("vpbx.commands.config:config_group", "Generate and check the Asterisk config vpbx owns."),
    "document": ("vpbx.commands.documents:document", "End users' documents for numbers that need them."),
    "group": ("vpbx.commands.groups:group", "Ring groups (departments): members and a strategy."),
    "init": ("vpbx.commands.config:init", "Write a config file with freshly generated ARI/AMI secrets (mode 0600)."),
    "ivr": ("vpbx.commands.ivrs:ivr", "Voice menus: a prompt and what each digit does."),
    "notices": ("vpbx.commands.notices:notices", "E-mail notices to accounts (connection, waitlist): kept until sent."),
    "number": ("vpbx.commands.numbers:number", "Phone numbers: add, list, change, route and remove."),
    "prompt": ("vpbx.commands.prompts:prompt",
               "Sound prompts (greetings, menus): upload in any format, installed as 8 kHz mono WAV."),
    "rates": ("vpbx.commands.rates:rates",
              "Per-minute rates: of toll-free calls by the caller's prefix, of outbound calls by destination "
              "(--outbound)."),
    "recording": ("vpbx.commands.recordings:recording", "Recorded calls: list, export, remove."),
    "reload": ("vpbx.commands.config:reload",
               "Regenerate the config and reload Asterisk over AMI (live calls stay up)."),
    "restore": ("vpbx.commands.backup:restore",
                "Restore an archive made by `vpbx backup` into a directory (checked first; all or nothing)."),
    "schedule": ("vpbx.commands.schedules:schedule",
                 "Business hours: open hours per weekday, holidays and closed dates, in a time zone."),
    "security": ("vpbx.commands.security:security",
                 "Brute-force protection: addresses banned after failed SIP logins."),
    "serve": ("vpbx.commands.engine:serve",
              "Run the ARI call engine: handle every call Asterisk hands to the vpbx Stasis app."),
    "service": ("vpbx.commands.service:service", "systemd units for the call engine and the daily billing job."),
    "sip": ("vpbx.commands.sip:sip", "SIP accounts (phones and softphones that register to vpbx)."),
    "stats": ("vpbx.commands.stats:stats",
              "Numbers by status, revenue by month, calls by number, outbound calls by destination."),
    "tariff": ("vpbx.commands.tariffs:tariff", "The price list: connection and monthly fees, plans, discounts (TOML)."),
    "trunk": ("vpbx.commands.trunks:trunk",
              "Third-party SIP trunks (a provider's line to dial out and receive calls)."),
    "voicemail": ("vpbx.commands.voicemail:voicemail", "Voicemail outbox: messages are kept until e-mailed."),
    "waitlist": ("vpbx.commands.waitlist:waitlist",
                 "Accounts waiting for a kind of number: mailed once when a match is added."),
}


# The exit codes scripts and cron can tell apart (README: Exit codes). 0 ok, 2 usage (Click).
EXIT_ERROR = 1          # bad input, unknown object, conflict, config: fix the command or the data
EXIT_ASTERISK = 3       # Asterisk (AMI/ARI) unreachable or refused: retry later or fix Asterisk, the command was fine


def load(target: str) -> click.Command:
    """"vpbx.commands.x:attr" -> the Click command it names."""
    module, _, attr = target.partition(":")
    command = getattr(importlib.import_module(module), attr)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a Click command")
    return command


class LazyCommands(MutableMapping[str, click.Command]):
    """The root group's `commands`: a command's module is imported the first time the command is looked up."""

    def __init__(self, table: dict[str, tuple[str, str]]) -> None:
        self.table = table
        self.loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self.loaded:
            if name not in self.table:
                raise KeyError(name)
            self.loaded[name] = load(self.table[name][0])
        return self.loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self.loaded[name] = command

    def __delitem__(self, name: str) -> None:
        self.loaded.pop(name, None)
        self.table.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(set(self.table) | set(self.loaded)))

    def __len__(self) -> int:
        return len(set(self.table) | set(self.loaded))

    def __contains__(self, name: object) -> bool:
        return name in self.table or name in self.loaded

    def short_help(self, name: str) -> str | None:
        """The short help kept in the table; None when the command is not in it or is loaded (it then speaks for
        itself)."""
        entry = self.table.get(name)
        return entry[1] if entry is not None and name not in self.loaded else None


def _one_line(message: str) -> str:
    """A message as one printable line: control characters, line separators and undecodable bytes escaped."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for ch in message)


def _shown(arg: str, limit: int = 80) -> str:
    return _one_line(repr(arg if len(arg) <= limit else arg[:limit] + "..."))


def _unexpected(exc: Exception) -> str:
    """The `Error:` text of an exception no rule foresaw (a bug in vpbx): what happened, in one line, and where its
    traceback was written (a private file in the temp dir; also logged at debug level as vpbx.cli)."""
    import logging
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(exc))
    logging.getLogger("vpbx.cli").debug("unexpected error\n%s", text)
    what = f"{type(exc).__name__}: {str(exc)[:200]}" if str(exc) else type(exc).__name__
    try:
        fd, name = tempfile.mkstemp(prefix="vpbx-error-", suffix=".log")   # mode 0600
        with open(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(text)
        kept = f"the traceback is in {name}"
    except OSError:
        kept = "no traceback file could be written"
    return f"unexpected failure ({what}); this is a bug in vpbx: please report it with the command - {kept}"


class VpbxGroup(click.Group):
    """The root group: loads command modules lazily and turns vpbx errors into one `Error:` line and their exit code."""

    commands: LazyCommands

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands(dict(COMMANDS))

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Refuse what no argument can mean before any option is converted (exit 1, one `Error:` line): a byte that
        is not UTF-8 (Python decodes it to a lone surrogate) and NUL (no C string, path or value can hold it)."""
        for arg in args:
            if "\x00" in arg:
                raise click.ClickException(f"argument {_shown(arg)} contains NUL, which no argument can hold; "
                                           f"remove it")
            if any("\udc80" <= ch <= "\udcff" for ch in arg):   # how Python decodes a byte of argv that is not UTF-8
                raise click.ClickException(f"argument {_shown(arg)} is not valid UTF-8 text; give every argument as "
                                           f"UTF-8")
        return super().parse_args(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Like Click's, but from the short help kept in COMMANDS, so that `--help` imports no command module."""
        names = list(self.list_commands(ctx))
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            kept = self.commands.short_help(name)
            if kept is not None:
                rows.append((name, click.Command(name, help=kept).get_short_help_str(limit)))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        from vpbx.domain.errors import AsteriskError, VpbxError
        from vpbx.domain.validation import cut_long_words

        try:
            return super().invoke(ctx)
        except VpbxError as exc:
            click.echo(f"Error: {_one_line(cut_long_words(str(exc)))}", err=True)
            ctx.exit(EXIT_ASTERISK if isinstance(exc, AsteriskError) else EXIT_ERROR)
        except click.exceptions.ClickException as exc:      # Click's usage errors quote arguments too
            exc.message = cut_long_words(exc.message)  # type: ignore[misc]  # Final in the stubs, a plain attribute
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:    # a bug: one line, and the traceback kept in a file for the report
            click.echo(f"Error: {_one_line(_unexpected(exc))}", err=True)
            ctx.exit(EXIT_ERROR)


@click.group(cls=VpbxGroup)
@click.option("--config", "config_path", envvar="VPBX_CONFIG", type=click.Path(dir_okay=False),
              help="Config file (TOML); default /etc/vpbx/vpbx.toml, else ./vpbx.toml. Env: VPBX_CONFIG.")
@click.option("--db", "db_path", envvar="VPBX_DB", type=click.Path(dir_okay=False),
              help="SQLite database; overrides the config. Env: VPBX_DB.")
@click.version_option(package_name="vpbx", message="vpbx %(version)s")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, db_path: str | None) -> None:
    """vpbx: a self-hosted virtual PBX on Asterisk.

    Manage numbers, SIP accounts, trunks, groups and IVRs, generate Asterisk config, and serve live calls.
    """
    from vpbx.commands.output import setup_logging

    setup_logging()        # any vpbx module's logging.warning -> one `Warning: ...` line on stderr
    obj = Ctx(config_path, db_path)
    ctx.obj = obj
    ctx.call_on_close(obj.close)


if __name__ == "__main__":
    main()
