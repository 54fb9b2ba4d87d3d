"""`vpbx service install|uninstall`: the systemd units that run the engine and the daily billing job.

Rule: a thin shell over vpbx.services.systemd.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from vpbx.commands.output import Ctx, pass_ctx

if TYPE_CHECKING:
    from vpbx.services.systemd import Report, UnitPaths

UNIT_DIR = "/etc/systemd/system"
unit_dir_option = click.option("--unit-dir", type=click.Path(file_okay=False), default=UNIT_DIR, show_default=True,
                               help="Where the unit files go; any other directory only gets the files (no user, no "
                                    "systemctl).")


@click.group()
def service() -> None:
    """systemd units for the call engine and the daily billing job."""


def _paths(c: Ctx, user: str) -> UnitPaths:
    from vpbx.asterisk.security import bans_dir
    from vpbx.config import find_config_path
    from vpbx.domain.errors import ConfigError
    from vpbx.services.systemd import UnitPaths, check_user, vpbx_command

    found = find_config_path(c.config_path)
    if found is None:
        raise ConfigError("no config file to point the units at; create one with `vpbx --config /etc/vpbx/vpbx.toml "
                          "init --dir /var/lib/vpbx`, or give --config PATH")
    config = Path(found).absolute()
    cfg = c.cfg
    return UnitPaths(command=vpbx_command(), config=config, db=Path(cfg.db).absolute(),
                     db_override=c.db_path is not None, user=check_user(user), bans_dir=bans_dir(cfg).absolute())


def _say(report: Report) -> None:
    from vpbx.config import shown

    for path in report.written:
        click.echo(f"Wrote {shown(path)}")
    for path in report.unchanged:
        click.echo(f"Unchanged {shown(path)}")
    for path in report.removed:
        click.echo(f"Removed {shown(path)}")
    for line in report.done:
        click.echo(f"Done: {line}")
    if report.todo:
        click.echo("To do (systemd is not managing these units from here):")
        for line in report.todo:
            click.echo(f"  {line}")


@service.command("install")
@click.option("--user", default="vpbx", show_default=True,
              help="System user the services run as (created when missing).")
@unit_dir_option
@click.option("--enable/--no-enable", default=True, show_default=True,
              help="Enable and start vpbx.service and vpbx-billing.timer.")
@click.option("--dry-run", is_flag=True, help="Print the units; write and change nothing.")
@pass_ctx
def install(c: Ctx, user: str, unit_dir: str, enable: bool, dry_run: bool) -> None:
    """Write vpbx.service, vpbx-billing.service and vpbx-billing.timer for this install's config and vpbx, create the
    service user and the brute-force bans directory in Asterisk's config dir, reload systemd and start them (run it
    again after moving anything; unchanged units are kept)."""
    from vpbx.services import systemd

    paths = _paths(c, user)
    if dry_run:
        for name, text in systemd.render_units(paths).items():
            click.echo(f"# {Path(unit_dir) / name}")
            click.echo(text)
        return
    _say(systemd.install(paths, Path(unit_dir), enable=enable))


@service.command("uninstall")
@unit_dir_option
def uninstall(unit_dir: str) -> None:
    """Stop and disable the units and remove their files; the service user, the config, the database and the bans
    directory stay."""
    from vpbx.services import systemd

    _say(systemd.uninstall(Path(unit_dir)))
