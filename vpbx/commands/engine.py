"""`vpbx serve`: the ARI call engine.

Rule: a thin shell over vpbx.ari_app.
"""
from __future__ import annotations

import click

from vpbx.commands.output import Ctx, pass_ctx


@click.command()
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING"]), default="INFO", show_default=True)
@pass_ctx
def serve(c: Ctx, log_level: str) -> None:
    """Run the ARI call engine: handle every call Asterisk hands to the vpbx Stasis app."""
    from vpbx.ari_app import run_engine

    run_engine(c.cfg, log_level=log_level)
