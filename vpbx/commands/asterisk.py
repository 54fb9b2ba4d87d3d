"""`vpbx asterisk install|check`: vpbx on a system Asterisk the admin already runs (its own /etc/asterisk).

Rule: a thin shell over vpbx.asterisk.system - one call each, then output (text or `--json`).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from vpbx.commands.output import Ctx, json_option, pass_ctx

config_dir_option = click.option("--config-dir", type=click.Path(),
                                  help="Asterisk's config dir (default: [asterisk] config_dir of vpbx.toml).")


@click.group("asterisk")
def asterisk() -> None:
    """Add vpbx to a system Asterisk's config, and check that Asterisk."""


@asterisk.command("install")
@config_dir_option
@json_option
@pass_ctx
def install(c: Ctx, config_dir: str | None, as_json: bool) -> None:
    """Add vpbx's includes, base files and ARI/AMI settings to Asterisk's config (backups, idempotent)."""
    from vpbx.asterisk import deploy, system

    target = system.config_dir_of(c.cfg, Path(config_dir) if config_dir else None)   # before the database is opened
    done = system.install(c.cfg, deploy.install_records(c.store), target)
    if as_json:
        click.echo(json.dumps(done.to_dict(), indent=2))
        return
    for change, backup in done.changed:
        verb = "Created" if change.old is None else "Changed"
        kept = f" (backup {backup.name})" if backup is not None else ""
        click.echo(f"{verb} {done.config_dir / change.name}{kept}")
        for what in change.changes:
            click.echo(f"  - {what}")
    for note in done.notes:
        click.echo(f"Note: {note}")
    if done.changed:
        click.echo("Restart Asterisk to apply (e.g. `systemctl restart asterisk`), then run `vpbx asterisk check`")
    else:
        click.echo(f"Nothing to change: {done.config_dir} already has what vpbx needs")


@asterisk.command("check")
@config_dir_option
@json_option
@pass_ctx
def check(c: Ctx, config_dir: str | None, as_json: bool) -> None:
    """Report what Asterisk lacks for vpbx, with the fix; exit 1 when something is wrong, 3 when unreachable."""
    from vpbx.asterisk import system

    items, unreachable = system.check(c.cfg, Path(config_dir) if config_dir else None)
    bad = [i for i in items if not i.ok]
    if as_json:
        click.echo(json.dumps({"ok": not bad and unreachable is None, "items": [i.to_dict() for i in items],
                               "unreachable": str(unreachable) if unreachable else None}, indent=2))
    else:
        for item in items:
            click.echo(f"{'ok  ' if item.ok else 'FAIL'}  {item.what}: {item.detail}")
            if not item.ok and item.fix:
                click.echo(f"      fix: {item.fix}")
    if unreachable is not None:
        raise unreachable
    if bad:
        click.echo(f"Error: {len(bad)} problem(s) for vpbx in this Asterisk; apply the fixes listed above", err=True)
        sys.exit(1)
    if not as_json:
        click.echo("Asterisk has everything vpbx needs")
