"""`vpbx document ...`: end users' documents for numbers that need them.

Rule: a thin shell over vpbx.services.lifecycle.add_document.
"""
from __future__ import annotations

from pathlib import Path

import click

from vpbx.commands.output import Ctx, emit, json_option, pass_ctx


@click.group()
def document() -> None:
    """End users' documents for numbers that need them."""


@document.command("add")
@click.argument("number_", metavar="NUMBER")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@json_option
@pass_ctx
def document_add(c: Ctx, number_: str, file: str, as_json: bool) -> None:
    """Store FILE (a scan, PDF) for NUMBER; kept owner-only beside the database."""
    from vpbx.services import lifecycle

    emit(lifecycle.add_document(c.store, c.cfg, number_, Path(file)), as_json)


@document.command("list")
@click.argument("number_", required=False, metavar="[NUMBER]")
@json_option
@pass_ctx
def document_list(c: Ctx, number_: str | None, as_json: bool) -> None:
    """List stored documents (of one NUMBER)."""
    emit(c.store.shop.list_documents(number_), as_json, ("id", "number", "account", "filename", "size", "added_at"),
         title="documents")
