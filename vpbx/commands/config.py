"""`vpbx init`, `vpbx config generate|check` and `vpbx reload`: the install's config file and the Asterisk config
vpbx generates.

Rule: a thin shell over vpbx.services.install and vpbx.asterisk.deploy.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from vpbx.commands.output import Ctx, emit, json_option, pass_ctx


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Directory for vpbx.toml and vpbx.db.")
@click.option("--asterisk-config-dir", type=click.Path(file_okay=False),
              help="Where Asterisk reads its config (default /etc/asterisk).")
@click.option("--sounds-dir", type=click.Path(file_okay=False),
              help="Asterisk sounds dir (default /usr/share/asterisk/sounds).")
@click.option("--sip-bind", default="127.0.0.1", show_default=True,
              help="Address SIP (UDP and TCP) listens on; 0.0.0.0 for phones on your network.")
@click.option("--sip-port", type=int, default=5060, show_default=True, help="Port SIP (UDP and TCP) listens on.")
@click.option("--tls-port", type=int, default=5061, show_default=True, help="Port of the SIP TLS transport.")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="PEM certificate (chain): enables SIP over TLS.")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="PEM private key of --tls-cert.")
@click.option("--external-address", default="",
              help="Public IP or name of this server when it is behind NAT (goes into SIP and SDP).")
@click.option("--local-net", multiple=True, help="A network reached without NAT, e.g. 192.168.0.0/16 (repeat).")
@click.option("--rtp-start", type=int, default=10000, show_default=True, help="First RTP (media) port, UDP.")
@click.option("--rtp-end", type=int, default=20000, show_default=True, help="Last RTP (media) port, UDP.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Write the config here (default DIR/vpbx.toml, or the global --config; never VPBX_CONFIG); "
                   "production: /etc/vpbx/vpbx.toml with --dir /var/lib/vpbx.")
@click.option("--force", is_flag=True, help="Replace an existing config (new secrets).")
@pass_ctx
def init(c: Ctx, directory: str, asterisk_config_dir: str | None, sounds_dir: str | None, sip_bind: str,
         sip_port: int, tls_port: int, tls_cert: str | None, tls_key: str | None, external_address: str,
         local_net: tuple[str, ...], rtp_start: int, rtp_end: int, config_file: str | None, force: bool) -> None:
    """Write a config file with freshly generated ARI/AMI secrets (mode 0600).

    The production layout: `vpbx init --config /etc/vpbx/vpbx.toml --dir /var/lib/vpbx`, then `vpbx service install`
    (which hands the database directory to the service user and makes the config readable to its group, 0640).
    """
    from vpbx.config import SipSettings, find_config_path, shown
    from vpbx.services import install

    sip = SipSettings(tls_port=tls_port, tls_cert=tls_cert or "", tls_key=tls_key or "",
                      external_address=external_address, local_net=local_net, rtp_start=rtp_start, rtp_end=rtp_end)
    # init writes only where its command line says: VPBX_CONFIG / VPBX_DB name the live install, never a target
    root = click.get_current_context().find_root()
    typed = {name: getattr(c, name) if root.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
             else None for name in ("config_path", "db_path")}
    cfg, path = install.init(directory, config_path=config_file or typed["config_path"], db_path=typed["db_path"],
                             asterisk_config_dir=asterisk_config_dir, sounds_dir=sounds_dir, sip_port=sip_port,
                             sip_bind=sip_bind, sip=sip, force=force)
    mode = path.stat().st_mode & 0o777
    click.echo(f"Wrote {shown(path)} (mode {mode:04o}) with new ARI/AMI secrets; database {shown(cfg.db)}")
    found = find_config_path(c.config_path)
    if found is None or found.resolve() != path.resolve():
        default = f"they read {shown(found)}" if found is not None else "they find no config"
        click.echo(f"Note: other commands use this config only with --config {shown(path)} or "
                   f"VPBX_CONFIG={shown(path)} ({default} by default)")


@click.group("config")
def config_group() -> None:
    """Generate and check the Asterisk config vpbx owns."""


@config_group.command("generate")
@click.option("--out", type=click.Path(file_okay=False), help="Write here instead of the Asterisk config dir.")
@pass_ctx
def config_generate(c: Ctx, out: str | None) -> None:
    """Render pjsip_vpbx.conf, extensions_vpbx.conf and the ARI/AMI users (atomic writes)."""
    from vpbx.asterisk import deploy

    for p in deploy.generate_install(c.cfg, c.store, out_dir=Path(out) if out else None):
        click.echo(f"Wrote {p}")


@config_group.command("check")
@json_option
@pass_ctx
def config_check(c: Ctx, as_json: bool) -> None:
    """Exit 1 and show a diff when the files on disk differ from what the database renders."""
    from vpbx.asterisk import deploy

    diff = deploy.check_install(c.cfg, c.store)
    if as_json:
        emit({"up_to_date": not diff, "diff": diff or ""}, True)
    elif diff:
        click.echo(diff)
    if diff:
        click.echo("Error: Asterisk config on disk is out of date; run `vpbx config generate` or `vpbx reload`",
                   err=True)
        sys.exit(1)
    click.echo("Asterisk config is up to date")


@click.command()
@pass_ctx
def reload(c: Ctx) -> None:
    """Regenerate the config and reload Asterisk over AMI (live calls stay up)."""
    from vpbx.asterisk import deploy

    deploy.reload_install(c.cfg, c.store)
    click.echo("Asterisk reloaded")
