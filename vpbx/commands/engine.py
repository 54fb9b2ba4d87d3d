"""`vpbx serve`: the ARI call engine.

Rule: a thin shell over vpbx.ari_app.
"""
from __future__ import annotations

import click

from vpbx.commands.output import Ctx, pass_ctx


@click.command()
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
              default="info", show_default=True, help="The least severe log record written.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: one readable line per record (no timestamp under journald, which adds its own); "
                   "json: one object per line (ts, level, logger, message, exc); call steps are JSON in both.")
@pass_ctx
def serve(c: Ctx, log_level: str, log_format: str) -> None:
    """Run the ARI call engine: handle every call Asterisk hands to the vpbx Stasis app.

    Under systemd (Type=notify) it reports READY=1 once ARI is connected and the Stasis app is registered, and
    STOPPING=1 on SIGTERM; calls in progress stay up in Asterisk for the next engine to adopt.
    """
    from vpbx.ari_app import run_engine

    cfg = c.cfg
    run_engine(cfg, log_level=log_level.lower(), log_format=log_format)
