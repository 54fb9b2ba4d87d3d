"""`vpbx` command line: a thin shell over the store, the renderers and the engine.

Rules: every command opens the store, calls one library function and prints; a VpbxError becomes one
`Error: ...` line on stderr and exit 1 (usage errors exit 2, from Click); `--json` prints exactly one JSON
document on stdout. Heavy modules are imported inside commands so `vpbx --help` starts fast.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import click

if TYPE_CHECKING:
    from vpbx.config import Config
    from vpbx.storage.store import Store


class VpbxGroup(click.Group):
    """Turns vpbx errors into a single `Error:` line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        from vpbx.domain.errors import VpbxError

        try:
            return super().invoke(ctx)
        except VpbxError as exc:
            message = str(exc).replace("\r", "\\r").replace("\n", "\\n")  # always exactly one line
            click.echo(f"Error: {message}", err=True)
            ctx.exit(1)


class Ctx:
    def __init__(self, config_path: str | None, db_path: str | None) -> None:
        self.config_path = config_path
        self.db_path = db_path
        self._cfg: Config | None = None
        self._store: Store | None = None

    @property
    def cfg(self) -> "Config":
        if self._cfg is None:
            from vpbx.config import load_config

            self._cfg = load_config(self.config_path, self.db_path)
        return self._cfg

    @property
    def store(self) -> "Store":
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


@click.group(cls=VpbxGroup)
@click.option("--config", "config_path", envvar="VPBX_CONFIG", type=click.Path(dir_okay=False),
              help="Config file (TOML); default ./vpbx.toml. Env: VPBX_CONFIG.")
@click.option("--db", "db_path", envvar="VPBX_DB", type=click.Path(dir_okay=False),
              help="SQLite database; overrides the config. Env: VPBX_DB.")
@click.version_option(package_name="vpbx", message="vpbx %(version)s")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, db_path: str | None) -> None:
    """vpbx: a self-hosted virtual PBX on Asterisk.

    Manage numbers, SIP accounts, trunks, groups and IVRs, generate Asterisk config, and serve live calls.
    """
    obj = Ctx(config_path, db_path)
    ctx.obj = obj
    ctx.call_on_close(obj.close)


# ---- init ----------------------------------------------------------------------------------------------------
@main.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Directory for vpbx.toml and vpbx.db.")
@click.option("--asterisk-config-dir", type=click.Path(file_okay=False), help="Where Asterisk reads its config (default /etc/asterisk).")
@click.option("--sounds-dir", type=click.Path(file_okay=False), help="Asterisk sounds dir (default /usr/share/asterisk/sounds).")
@click.option("--sip-port", type=int, default=5060, show_default=True, help="UDP port Asterisk's SIP listens on.")
@click.option("--force", is_flag=True, help="Replace an existing config (new secrets).")
@pass_ctx
def init(c: Ctx, directory: str, asterisk_config_dir: str | None, sounds_dir: str | None, sip_port: int, force: bool) -> None:
    """Write a config file with freshly generated ARI/AMI secrets (mode 0600)."""
    from vpbx.config import new_config, write_config

    base = Path(directory).resolve()
    path = Path(c.config_path).resolve() if c.config_path else base / "vpbx.toml"
    cfg = new_config(base, Path(asterisk_config_dir).resolve() if asterisk_config_dir else None,
                     Path(sounds_dir).resolve() if sounds_dir else None, sip_port=sip_port)
    if c.db_path:
        from dataclasses import replace

        cfg = replace(cfg, db=Path(c.db_path).resolve())
    write_config(cfg, path, force=force)
    from vpbx.storage.store import Store

    Store.open(cfg.db).close()
    click.echo(f"Wrote {path} (mode 0600) with new ARI/AMI secrets; database {cfg.db}")


# ---- numbers -------------------------------------------------------------------------------------------------
@main.group()
def number() -> None:
    """Phone numbers: add, list, change, route and remove."""


def build_number(number_: str, channels: int | None, direction: str | None, trunk: str | None, comment: str | None,
                 city: str | None, operator: str | None, type_: str | None) -> Any:
    from vpbx.domain import numbers
    from vpbx.domain import validation as validate
    from vpbx.domain.errors import ValidationError
    from vpbx.domain.records import Number

    info = numbers.parse(number_)
    ntype = type_ or info.type
    if ntype not in numbers.TYPES:
        raise ValidationError(f"number {number_}: type {ntype!r} is not one of {', '.join(numbers.TYPES)}")
    if direction is not None and direction not in ("in", "out", "both"):
        raise ValidationError(f"number {number_}: direction {direction!r} must be in, out or both")
    if channels is not None and channels < 4:
        raise ValidationError(f"number {number_}: channels must be at least 4 (a number comes with 4 or more); got {channels}")
    direction = direction or "in"
    if "tollfree" in (ntype, info.type) and direction != "in":
        raise ValidationError(f"number {number_} is toll-free, which is inbound-only; use --direction in")
    for field_name, value in (("comment", comment), ("city", city), ("operator", operator)):
        if value:
            validate.config_text(field_name, value, obj=f"number {number_}")
    if trunk:
        validate.name(trunk, "trunk")
    return Number(number=info.number, channels=channels or 4, direction=direction, trunk=trunk, comment=comment or "",
                  type=ntype, city=city if city is not None else info.city,
                  operator=operator if operator is not None else info.operator, country=info.country, category=info.category)


NUMBER_COLUMNS = ("number", "type", "category", "city", "operator", "channels", "direction", "trunk", "route", "status",
                  "account", "comment")
NUMBER_STATUSES = ("available", "reserved", "pending_documents", "active", "suspended", "trial", "released")


def announce_available(c: "Ctx", numbers: Sequence[Any]) -> None:
    """New numbers for sale: waitlisted accounts that match get one e-mail each (sent now, or kept to retry)."""
    from vpbx.services import lifecycle

    if lifecycle.notify_waitlist(c.store, numbers):
        lifecycle.flush_mail(c.store, c.cfg)


@number.command("add")
@click.argument("number_")
@click.option("--channels", type=int, help="Simultaneous calls (minimum and default 4).")
@click.option("--direction", type=click.Choice(["in", "out", "both"]), help="Default in; toll-free numbers are in only.")
@click.option("--trunk", help="Trunk the number is served by and dials out through.")
@click.option("--comment", help="Free text.")
@click.option("--city", help="Override the city phonenumbers reports.")
@click.option("--operator", help="Override the operator phonenumbers reports.")
@click.option("--type", "type_", type=click.Choice(["geographic", "mobile", "tollfree", "other"]), help="Override the type.")
@json_option
@pass_ctx
def number_add(c: Ctx, number_: str, channels: int | None, direction: str | None, trunk: str | None, comment: str | None,
               city: str | None, operator: str | None, type_: str | None, as_json: bool) -> None:
    """Add an E.164 NUMBER (e.g. +380441234567)."""
    record = build_number(number_, channels, direction, trunk, comment, city, operator, type_)
    emit(c.store.numbers.add(record), as_json, NUMBER_COLUMNS)
    announce_available(c, [record])


@number.command("list")
@click.option("--category", type=click.Choice(["regular", "bronze", "silver", "gold", "platinum"]))
@click.option("--type", "type_", type=click.Choice(["geographic", "mobile", "tollfree", "other"]))
@click.option("--city")
@click.option("--operator")
@click.option("--contains", help="Digits the number contains.")
@click.option("--status", type=click.Choice(NUMBER_STATUSES), help="Lifecycle status, e.g. available (for sale).")
@click.option("--account", help="Numbers held by this account.")
@json_option
@pass_ctx
def number_list(c: Ctx, category: str | None, type_: str | None, city: str | None, operator: str | None,
                contains: str | None, status: str | None, account: str | None, as_json: bool) -> None:
    """List numbers, optionally filtered."""
    if contains and not contains.isdigit():
        from vpbx.domain.errors import ValidationError

        raise ValidationError(f"--contains {contains!r} must be digits only")
    rows = c.store.numbers.search(category=category, type=type_, city=city, operator=operator, contains=contains,
                                status=status, account=account)
    emit(rows, as_json, NUMBER_COLUMNS, title="numbers")


@number.command("show")
@click.argument("number_")
@json_option
@pass_ctx
def number_show(c: Ctx, number_: str, as_json: bool) -> None:
    """Show one number with its routing."""
    emit(c.store.numbers.get(number_), as_json)


@number.command("set")
@click.argument("numbers_", nargs=-1, required=True)
@click.option("--channels", type=int)
@click.option("--direction", type=click.Choice(["in", "out", "both"]))
@click.option("--comment")
@click.option("--trunk", help="Trunk name; '' to clear.")
@click.option("--requires-documents/--no-requires-documents", default=None,
              help="The number is connected only after the end user's documents are checked.")
@click.option("--lead-days", type=click.IntRange(0, 60), help="Days the document check takes (told to the customer).")
@json_option
@pass_ctx
def number_set(c: Ctx, numbers_: tuple[str, ...], channels: int | None, direction: str | None, comment: str | None,
               trunk: str | None, requires_documents: bool | None, lead_days: int | None, as_json: bool) -> None:
    """Change one or several numbers at once (all or nothing)."""
    from vpbx.domain import validation as validate
    from vpbx.domain.errors import ValidationError

    changes: dict[str, Any] = {}
    obj = f"number {', '.join(numbers_)}"
    with validate.about(obj):
        if channels is not None:
            if channels < 4:
                raise ValidationError(f"channels must be at least 4; got {channels}")
            changes["channels"] = channels
        if direction is not None:
            changes["direction"] = direction
        if comment is not None:
            changes["comment"] = validate.config_text("comment", comment, obj=obj)
        if trunk is not None:
            changes["trunk"] = validate.name(trunk, "trunk") if trunk else None
        if requires_documents is not None:
            changes["requires_documents"] = requires_documents
        if lead_days is not None:
            changes["lead_days"] = lead_days
    if not changes:
        raise click.UsageError("nothing to change; give --channels, --direction, --comment, --trunk, "
                               "--requires-documents or --lead-days")
    if direction in ("out", "both"):
        for n in numbers_:
            if c.store.numbers.get(n).type == "tollfree":
                raise ValidationError(f"number {n} is toll-free, which is inbound-only; use --direction in")
    emit(c.store.numbers.update(numbers_, **changes), as_json, NUMBER_COLUMNS, title="numbers")


@number.command("remove")
@click.argument("number_")
@pass_ctx
def number_remove(c: Ctx, number_: str) -> None:
    """Remove a number (refused while something uses it)."""
    c.store.numbers.remove(number_)
    click.echo(f"Removed number {number_}")


@number.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False))
@json_option
@pass_ctx
def number_import(c: Ctx, csv_file: str, as_json: bool) -> None:
    """Bulk-add numbers from a CSV with a header: number[,channels,direction,trunk,comment,city,operator,type].

    All rows are checked first; one bad row and nothing is imported.
    """
    import csv

    from rich.progress import Progress

    from vpbx.domain.errors import ValidationError

    with open(csv_file, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "number" not in rows[0]:
        raise ValidationError(f"{csv_file}: needs a header row with at least a 'number' column")
    records = []
    with Progress(disable=as_json, transient=False) as progress:
        task = progress.add_task("checking", total=len(rows))
        for line_no, row in enumerate(rows, start=2):
            try:
                records.append(build_number(
                    (row.get("number") or "").strip(), int(row["channels"]) if row.get("channels") else None,
                    row.get("direction") or None, row.get("trunk") or None, row.get("comment") or None,
                    row.get("city") or None, row.get("operator") or None, row.get("type") or None))
            except (ValidationError, ValueError) as exc:
                raise ValidationError(f"{csv_file} line {line_no}: {exc}; nothing was imported") from None
            progress.advance(task)
        progress.update(task, description="importing")
        c.store.numbers.add_many(records)
    announce_available(c, records)
    if as_json:
        emit({"imported": len(records)}, True)
    else:
        click.echo(f"Imported {len(records)} numbers")


# ---- SIP accounts --------------------------------------------------------------------------------------------
@main.group()
def sip() -> None:
    """SIP accounts (phones and softphones that register to vpbx)."""


def generate_password() -> str:
    import secrets

    return secrets.token_urlsafe(18)  # 24 characters


SIP_COLUMNS = ("login", "domain", "caller_id", "channels")


@sip.command("add")
@click.argument("login")
@click.option("--password", help="Omit to have a strong one generated (shown once).")
@click.option("--caller-id", help="A number of this install presented on outbound calls.")
@click.option("--channels", type=int, default=2, show_default=True, help="Simultaneous calls.")
@json_option
@pass_ctx
def sip_add(c: Ctx, login: str, password: str | None, caller_id: str | None, channels: int, as_json: bool) -> None:
    """Add a SIP account; the password is shown once."""
    from vpbx.domain import validation as validate
    from vpbx.domain.errors import ValidationError
    from vpbx.domain.records import SipAccount, to_dict

    with validate.about(f"SIP account {login}"):
        validate.login(login)
        if password is not None:
            validate.password(password)
    if channels < 1:
        raise ValidationError(f"SIP account {login}: channels must be at least 1")
    account = SipAccount(login=login, password=password or generate_password(), domain=c.cfg.domain,
                         caller_id=caller_id, channels=channels)
    c.store.sip_accounts.add(account)
    emit(to_dict(account), as_json, (*SIP_COLUMNS, "password"))
    if not as_json:
        click.echo("Save the password now: it is not shown again (`vpbx sip passwd` makes a new one).")


def _public_sip(account: Any) -> dict[str, Any]:
    from vpbx.domain.records import to_dict

    data = to_dict(account)
    data.pop("password")
    return data


@sip.command("list")
@json_option
@pass_ctx
def sip_list(c: Ctx, as_json: bool) -> None:
    """List SIP accounts (passwords are never shown)."""
    emit([_public_sip(a) for a in c.store.sip_accounts.all()], as_json, SIP_COLUMNS, title="SIP accounts")


@sip.command("show")
@click.argument("login")
@json_option
@pass_ctx
def sip_show(c: Ctx, login: str, as_json: bool) -> None:
    """Show one SIP account."""
    emit(_public_sip(c.store.sip_accounts.get(login)), as_json)


@sip.command("remove")
@click.argument("login")
@pass_ctx
def sip_remove(c: Ctx, login: str) -> None:
    """Remove a SIP account (refused while a route uses it)."""
    c.store.sip_accounts.remove(login)
    click.echo(f"Removed SIP account {login}")


@sip.command("passwd")
@click.argument("login")
@json_option
@pass_ctx
def sip_passwd(c: Ctx, login: str, as_json: bool) -> None:
    """Give a SIP account a new generated password (shown once)."""
    account = c.store.sip_accounts.set_password(login, generate_password())
    emit({"login": login, "password": account.password}, as_json)


# ---- trunks --------------------------------------------------------------------------------------------------
@main.group()
def trunk() -> None:
    """Third-party SIP trunks (a provider's line to dial out and receive calls)."""


TRUNK_COLUMNS = ("name", "server", "port", "transport", "login", "register")


@trunk.command("add")
@click.argument("name")
@click.option("--server", required=True, help="Provider's SIP host or IP.")
@click.option("--port", type=int, default=5060, show_default=True)
@click.option("--login", required=True)
@click.option("--password", required=True)
@click.option("--transport", type=click.Choice(["udp", "tcp", "tls"]), default="udp", show_default=True)
@click.option("--register/--no-register", default=True, show_default=True, help="Register to the provider.")
@json_option
@pass_ctx
def trunk_add(c: Ctx, name: str, server: str, port: int, login: str, password: str, transport: str, register: bool,
              as_json: bool) -> None:
    """Add a provider's SIP trunk."""
    from vpbx.domain import validation as validate
    from vpbx.domain.records import Trunk

    with validate.about(f"trunk {name}"):
        validate.name(name, "trunk")
        validate.host(server)
        validate.port(port)
        validate.login(login, "trunk login")
        validate.config_text("password", password, obj=f"trunk {name}")
    record = Trunk(name=name, server=server, port=port, login=login, password=password, transport=transport, register=register)
    c.store.trunks.add(record)
    data = _public_trunk(record)
    emit(data, as_json, TRUNK_COLUMNS)


def _public_trunk(record: Any) -> dict[str, Any]:
    from vpbx.domain.records import to_dict

    data = to_dict(record)
    data.pop("password")
    return data


@trunk.command("list")
@json_option
@pass_ctx
def trunk_list(c: Ctx, as_json: bool) -> None:
    """List trunks."""
    emit([_public_trunk(t) for t in c.store.trunks.all()], as_json, TRUNK_COLUMNS, title="trunks")


@trunk.command("show")
@click.argument("name")
@json_option
@pass_ctx
def trunk_show(c: Ctx, name: str, as_json: bool) -> None:
    """Show one trunk."""
    emit(_public_trunk(c.store.trunks.get(name)), as_json)


@trunk.command("remove")
@click.argument("name")
@pass_ctx
def trunk_remove(c: Ctx, name: str) -> None:
    """Remove a trunk (refused while numbers use it)."""
    c.store.trunks.remove(name)
    click.echo(f"Removed trunk {name}")


# ---- Asterisk config -----------------------------------------------------------------------------------------
@main.group("config")
def config_group() -> None:
    """Generate and check the Asterisk config vpbx owns."""


def _records(c: Ctx) -> tuple[list[Any], list[Any], list[Any]]:
    return c.store.numbers.search(), c.store.sip_accounts.all(), c.store.trunks.all()


def install_builtin_prompts(cfg: "Config") -> list[Path]:
    """The engine's own prompts (invalid option, unavailable, goodbye, ...) in every shipped language."""
    from vpbx.services import prompts

    return prompts.install_builtins(cfg.asterisk_sounds_dir, BUILTIN_PROMPTS_DIR)


@config_group.command("generate")
@click.option("--out", type=click.Path(file_okay=False), help="Write here instead of the Asterisk config dir.")
@pass_ctx
def config_generate(c: Ctx, out: str | None) -> None:
    """Render pjsip_vpbx.conf, extensions_vpbx.conf and the ARI/AMI users (atomic writes)."""
    from vpbx.asterisk import deploy

    paths = deploy.generate(c.cfg, *_records(c), out_dir=Path(out) if out else None)
    if out is None:
        paths += install_builtin_prompts(c.cfg)
    for p in paths:
        click.echo(f"Wrote {p}")


@config_group.command("check")
@pass_ctx
def config_check(c: Ctx) -> None:
    """Exit 1 and show a diff when the files on disk differ from what the database renders."""
    from vpbx.asterisk import deploy

    diff = deploy.check(c.cfg, *_records(c))
    if diff:
        click.echo(diff)
        click.echo("Error: Asterisk config on disk is out of date; run `vpbx config generate` or `vpbx reload`", err=True)
        sys.exit(1)
    click.echo("Asterisk config is up to date")


@main.command()
@pass_ctx
def reload(c: Ctx) -> None:
    """Regenerate the config and reload Asterisk over AMI (live calls stay up)."""
    from vpbx.asterisk import deploy

    deploy.generate(c.cfg, *_records(c))
    install_builtin_prompts(c.cfg)
    deploy.reload(c.cfg)
    click.echo("Asterisk reloaded")


# ---- routing (call engine) -----------------------------------------------------------------------------------
PROBE_NUMBER = "+10000000000"  # stands in for "a number routed here" when checking a group or IVR alone


def check_flows(store: "Store", numbers: Sequence[Any] | None = None, groups: Sequence[Any] = (), ivrs: Sequence[Any] = ()) -> None:
    """Compile the flows a change affects with the change applied; raises ValidationError before anything is written."""
    from vpbx.dialplan import compile_flow
    from vpbx.domain.records import Number

    from vpbx.services.flows import flow_inputs

    all_groups, all_ivrs, logins, extensions = flow_inputs(store, groups, ivrs)
    targets = list(numbers) if numbers is not None else []
    # a new or changed group / IVR is checked as if a number routed to it
    targets += [Number(number=PROBE_NUMBER, route=f"group:{g.name}") for g in groups]
    targets += [Number(number=PROBE_NUMBER, route=f"ivr:{i.name}") for i in ivrs]
    from vpbx.domain.errors import ValidationError

    for target in targets:
        try:
            compile_flow(target, all_groups, all_ivrs, logins, extensions)
        except ValidationError as exc:
            if target.number != PROBE_NUMBER:
                raise
            raise ValidationError(str(exc).replace(f"number {PROBE_NUMBER}: ", "")) from None


def _fallback_option(value: str | None) -> str | None:
    if value is None:
        return None
    from vpbx.domain import validation as validate
    from vpbx.domain.errors import ValidationError

    if value in ("hangup", "voicemail"):
        return value
    if value.startswith("play:"):
        validate.prompt_name(value[5:])
        return value
    raise ValidationError(f"fallback {value!r} is not valid; use hangup, voicemail or play:PROMPT")


def _vm_emails(values: Sequence[str]) -> tuple[str, ...]:
    from vpbx.domain import validation as validate

    return tuple(validate.email(v) for v in values)


fallback_option = click.option("--fallback", help="When forwarding fails: hangup | play:PROMPT | voicemail.")
vm_option = click.option("--vm-email", "vm_emails", multiple=True, help="Voicemail recipient (repeatable).")


def _apply_routing(c: Ctx, numbers_: Sequence[str], changes: dict[str, Any], as_json: bool) -> None:
    from dataclasses import replace

    store = c.store
    updated = [replace(store.numbers.get(n), **changes) for n in numbers_]
    for n in updated:
        if n.fallback == "voicemail" and not n.vm_emails:
            from vpbx.domain.errors import ValidationError

            raise ValidationError(f"number {n.number}: voicemail needs at least one --vm-email address")
    check_flows(store, updated)
    emit(store.numbers.update(numbers_, **changes), as_json, ("number", "route", "forward_to", "forward_mode", "fallback"),
         title="numbers")


@number.command("route")
@click.argument("numbers_", nargs=-1, required=True)
@click.argument("dest")
@click.option("--greeting", help="Prompt played (after answering) before the route; '' to remove.")
@fallback_option
@vm_option
@json_option
@pass_ctx
def number_route(c: Ctx, numbers_: tuple[str, ...], dest: str, greeting: str | None, fallback: str | None,
                 vm_emails: tuple[str, ...], as_json: bool) -> None:
    """Route one or several NUMBERS to DEST.

    DEST: sip:LOGIN | group:NAME | ivr:NAME | tel:+E164 | uri:sip:user@host[:port] | voicemail | play:PROMPT | hangup
    """
    from vpbx.domain import validation as validate

    changes: dict[str, Any] = {"route": dest, "forward_to": ()}
    if greeting is not None:
        changes["greeting"] = validate.prompt_name(greeting) if greeting else None
    if fallback is not None:
        changes["fallback"] = _fallback_option(fallback)
    if vm_emails:
        changes["vm_emails"] = _vm_emails(vm_emails)
    if dest == "voicemail" and not vm_emails:
        changes.setdefault("vm_emails", ())
    _apply_routing(c, numbers_, changes, as_json)


@number.command("forward")
@click.argument("numbers_", nargs=-1, required=True)
@click.option("--to", "targets", multiple=True, required=True, help="Destination (repeatable): sip:, tel:, uri:.")
@click.option("--mode", type=click.Choice(["simultaneous", "sequential"]), required=True)
@click.option("--timeout", type=click.IntRange(1, 600), default=30, show_default=True,
              help="Seconds: overall when simultaneous, per target when sequential.")
@click.option("--greeting", help="Prompt played before forwarding; '' to remove.")
@fallback_option
@vm_option
@json_option
@pass_ctx
def number_forward(c: Ctx, numbers_: tuple[str, ...], targets: tuple[str, ...], mode: str, timeout: int,
                   greeting: str | None, fallback: str | None, vm_emails: tuple[str, ...], as_json: bool) -> None:
    """Forward one or several numbers to one or more targets, all at once or one after another."""
    from vpbx.domain import validation as validate

    changes: dict[str, Any] = {"route": None, "forward_to": tuple(targets), "forward_mode": mode, "forward_timeout": timeout}
    if greeting is not None:
        changes["greeting"] = validate.prompt_name(greeting) if greeting else None
    if fallback is not None:
        changes["fallback"] = _fallback_option(fallback)
    if vm_emails:
        changes["vm_emails"] = _vm_emails(vm_emails)
    _apply_routing(c, numbers_, changes, as_json)


# ---- groups --------------------------------------------------------------------------------------------------
@main.group()
def group() -> None:
    """Ring groups (departments): members and a strategy."""


@group.command("add")
@click.argument("name")
@click.option("--member", "members", multiple=True, required=True, help="sip:LOGIN | tel:+E164 | uri:sip:... (repeatable)")
@click.option("--strategy", type=click.Choice(["simultaneous", "sequential"]), default="simultaneous", show_default=True)
@click.option("--timeout", type=click.IntRange(1, 600), default=20, show_default=True,
              help="Seconds: overall when simultaneous, per member when sequential.")
@json_option
@pass_ctx
def group_add(c: Ctx, name: str, members: tuple[str, ...], strategy: str, timeout: int, as_json: bool) -> None:
    """Add a ring group."""
    from vpbx.domain import validation as validate
    from vpbx.domain.records import Group

    validate.name(name, "group")
    record = Group(name=name, members=tuple(members), strategy=strategy, timeout=timeout)
    check_flows(c.store, [], groups=[record])
    emit(c.store.groups.add(record), as_json)


@group.command("list")
@json_option
@pass_ctx
def group_list(c: Ctx, as_json: bool) -> None:
    """List ring groups."""
    emit(c.store.groups.all(), as_json, ("name", "strategy", "timeout", "members"), title="groups")


@group.command("show")
@click.argument("name")
@json_option
@pass_ctx
def group_show(c: Ctx, name: str, as_json: bool) -> None:
    """Show one ring group."""
    emit(c.store.groups.get(name), as_json)


@group.command("remove")
@click.argument("name")
@pass_ctx
def group_remove(c: Ctx, name: str) -> None:
    """Remove a ring group (refused while a route uses it)."""
    c.store.groups.remove(name)
    click.echo(f"Removed group {name}")


# ---- IVRs ----------------------------------------------------------------------------------------------------
@main.group()
def ivr() -> None:
    """Voice menus: a prompt and what each digit does."""


@ivr.command("add")
@click.argument("name")
@click.option("--prompt", required=True, help="Prompt played as the menu.")
@click.option("--option", "options", multiple=True, help="DIGIT=DEST, e.g. 1=sip:alice (repeatable).")
@click.option("--timeout", type=click.IntRange(1, 60), default=5, show_default=True, help="Seconds to wait for a digit.")
@click.option("--retries", type=click.IntRange(1, 10), default=3, show_default=True)
@click.option("--invalid-prompt", help="Prompt for an invalid choice (default: built-in).")
@click.option("--extensions", is_flag=True, help="Callers may also type an extension / organisation ID, ended by #.")
@json_option
@pass_ctx
def ivr_add(c: Ctx, name: str, prompt: str, options: tuple[str, ...], timeout: int, retries: int,
            invalid_prompt: str | None, extensions: bool, as_json: bool) -> None:
    """Add an IVR menu."""
    from vpbx.domain import validation as validate
    from vpbx.domain.errors import ValidationError
    from vpbx.domain.records import Ivr

    validate.name(name, "IVR")
    validate.prompt_name(prompt)
    if invalid_prompt:
        validate.prompt_name(invalid_prompt)
    pairs = []
    for opt in options:
        digit, sep, dest = opt.partition("=")
        if not sep or len(digit) != 1 or digit not in "0123456789*#":
            raise ValidationError(f"IVR {name}: option {opt!r} must be DIGIT=DEST with one digit 0-9, * or #")
        if digit in dict(pairs):
            raise ValidationError(f"IVR {name}: digit {digit} is given twice")
        pairs.append((digit, dest))
    if not pairs and not extensions:
        raise ValidationError(f"IVR {name}: give at least one --option DIGIT=DEST, or --extensions")
    record = Ivr(name=name, prompt=prompt, options=tuple(pairs), timeout=timeout, retries=retries,
                 invalid_prompt=invalid_prompt, extensions=extensions)
    check_flows(c.store, [], ivrs=[record])
    emit(c.store.ivrs.add(record), as_json)


@ivr.command("list")
@json_option
@pass_ctx
def ivr_list(c: Ctx, as_json: bool) -> None:
    """List IVR menus."""
    emit(c.store.ivrs.all(), as_json, ("name", "prompt", "options", "timeout", "retries", "extensions"), title="IVRs")


@ivr.command("show")
@click.argument("name")
@json_option
@pass_ctx
def ivr_show(c: Ctx, name: str, as_json: bool) -> None:
    """Show one IVR menu."""
    emit(c.store.ivrs.get(name), as_json)


@ivr.command("remove")
@click.argument("name")
@pass_ctx
def ivr_remove(c: Ctx, name: str) -> None:
    """Remove an IVR (refused while a route uses it)."""
    c.store.ivrs.remove(name)
    click.echo(f"Removed IVR {name}")


# ---- calls ---------------------------------------------------------------------------------------------------
@main.group()
def call() -> None:
    """Dry-run call flows."""


@call.command("simulate")
@click.argument("number_")
@click.option("--from", "caller", default="+10000000000", show_default=True, help="Caller ID.")
@click.option("--dtmf", default="", help="Digits the caller presses, one per menu prompt.")
@click.option("--no-answer", "no_answer", multiple=True, help="Destination that rings out (repeatable).")
@click.option("--busy", multiple=True, help="Destination that is busy (repeatable).")
@json_option
@pass_ctx
def call_simulate(c: Ctx, number_: str, caller: str, dtmf: str, no_answer: tuple[str, ...], busy: tuple[str, ...],
                  as_json: bool) -> None:
    """Run NUMBER's call flow without Asterisk and print every step."""
    from vpbx.domain import validation as validate
    from vpbx.dialplan import simulate
    from vpbx.services.flows import load_flow

    validate.dtmf(dtmf)
    flow = load_flow(c.store, c.store.numbers.get(number_))
    lines = simulate(flow, caller, dtmf, set(no_answer), set(busy))
    if as_json:
        emit(lines, True)
    else:
        for line in lines:
            click.echo(line)


@main.group()
def calls() -> None:
    """Call records."""


@calls.command("list")
@click.option("--number", "number_", help="Only calls to/from this number.")
@click.option("--since", help="YYYY-MM-DD (UTC).")
@click.option("--limit", type=int, default=100, show_default=True)
@json_option
@pass_ctx
def calls_list(c: Ctx, number_: str | None, since: str | None, limit: int, as_json: bool) -> None:
    """List call records, newest first."""
    if since:
        from datetime import date

        from vpbx.domain.errors import ValidationError

        try:
            date.fromisoformat(since)
        except ValueError:
            raise ValidationError(f"--since {since!r} is not a date; use YYYY-MM-DD") from None
    rows = c.store.calls.recent(number=number_, since=since, limit=limit)
    emit(rows, as_json, ("started_at", "number", "caller", "disposition", "reached", "duration", "billsec", "voicemail"),
         title="calls")


@calls.command("stats")
@json_option
@pass_ctx
def calls_stats(c: Ctx, as_json: bool) -> None:
    """Per number: calls, answered, missed, minutes."""
    emit(c.store.calls.stats(), as_json, ("number", "calls", "answered", "missed", "minutes"), title="call stats")


# ---- prompts and voicemail -----------------------------------------------------------------------------------
BUILTIN_PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"


@main.group()
def prompt() -> None:
    """Sound prompts (greetings, menus): upload in any format, installed as 8 kHz mono WAV."""


@prompt.command("add")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--language", help="Language dir (default: the config's language).")
@json_option
@pass_ctx
def prompt_add(c: Ctx, name: str, file: str, language: str | None, as_json: bool) -> None:
    """Convert FILE (WAV, FLAC, OGG, MP3...) to 8 kHz 16-bit mono and install it as prompt NAME."""
    from vpbx.services import prompts

    path = prompts.add(c.cfg.asterisk_sounds_dir, language or c.cfg.language, name, Path(file))
    emit({"name": name, "language": language or c.cfg.language, "path": str(path)}, as_json)


@prompt.command("list")
@json_option
@pass_ctx
def prompt_list(c: Ctx, as_json: bool) -> None:
    """List installed prompts."""
    from vpbx.services import prompts

    emit(prompts.list_prompts(c.cfg.asterisk_sounds_dir), as_json, ("name", "language", "seconds"), title="prompts")


@prompt.command("remove")
@click.argument("name")
@click.option("--language", help="Only this language (default: all).")
@pass_ctx
def prompt_remove(c: Ctx, name: str, language: str | None) -> None:
    """Remove a prompt."""
    from vpbx.services import prompts

    for path in prompts.remove(c.cfg.asterisk_sounds_dir, name, language):
        click.echo(f"Removed {path}")


@main.group()
def voicemail() -> None:
    """Voicemail outbox: messages are kept until e-mailed."""


@voicemail.command("list")
@click.option("--pending", is_flag=True, help="Only messages not delivered yet.")
@json_option
@pass_ctx
def voicemail_list(c: Ctx, pending: bool, as_json: bool) -> None:
    """List recorded messages and their delivery state."""
    rows = c.store.outbox.list_voicemails(undelivered_only=pending)
    emit(rows, as_json, ("recording", "number", "caller", "created_at", "duration", "delivered_at", "attempts",
                         "last_error"), title="voicemails")


@voicemail.command("retry")
@click.argument("recording", required=False)
@pass_ctx
def voicemail_retry(c: Ctx, recording: str | None) -> None:
    """Make undelivered messages (or one RECORDING) due now; the running engine sends them within seconds."""
    from vpbx.services import voicemail as vm

    count = vm.retry_now(c.store, recording)
    click.echo(f"{count} message(s) queued for delivery")


# ---- engine --------------------------------------------------------------------------------------------------
@main.command()
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING"]), default="INFO", show_default=True)
@pass_ctx
def serve(c: Ctx, log_level: str) -> None:
    """Run the ARI call engine: handle every call Asterisk hands to the vpbx Stasis app."""
    from vpbx.ari_app import run_engine

    run_engine(c.cfg, log_level=log_level)


# accounts, tariffs, number orders and billing live in their own module; importing it registers those commands
from vpbx.commands import billing as cli_billing  # noqa: E402,F401

if __name__ == "__main__":
    # `python -m vpbx.cli`: run the imported module's group, the one cli_billing registered its commands on
    from vpbx.cli import main as _imported_main

    _imported_main()
