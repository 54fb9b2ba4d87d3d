"""Voice menus: a prompt, and what each key does.

Rule: an option is `KEY=DEST`: KEY one key of the domain's DTMF set (`vpbx.domain.validation.DTMF_DIGITS`: 0-9, *, #,
A-D), DEST a destination string (`vpbx.domain.destinations.parse`). A new IVR is checked by compiling a flow routed to
it before it is written.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from vpbx.domain import validation as validate
from vpbx.domain.errors import ValidationError
from vpbx.domain.records import Ivr
from vpbx.services.routing import check_flows, destination

if TYPE_CHECKING:
    from vpbx.storage.store import Store


def parse_options(name: str, options: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """["1=sip:alice", "2=group:sales"] -> (("1", "sip:alice"), ("2", "group:sales")); ValidationError names the IVR."""
    obj = f"IVR {name}"
    pairs: dict[str, str] = {}
    for option in options:
        key, sep, dest = option.partition("=")
        if not sep or key not in validate.DTMF_DIGITS:
            raise ValidationError(f"{obj}: option {validate.shown(option)} must be KEY=DEST with one key of "
                                  f"{validate.DTMF_HELP}")
        if key in pairs:
            raise ValidationError(f"{obj}: key {key} is given twice")
        pairs[key] = destination(dest, f"{obj}: option {key}")
    return tuple(pairs.items())


def add(store: Store, name: str, prompt: str, options: Sequence[str], *, timeout: int = 5, retries: int = 3,
        invalid_prompt: str | None = None, extensions: bool = False) -> Ivr:
    """Add an IVR menu; `extensions`: callers may also type an extension / organisation ID, ended by #."""
    validate.name(name, "IVR")
    validate.prompt_name(prompt)
    if invalid_prompt:
        validate.prompt_name(invalid_prompt)
    if not 1 <= timeout <= 60:
        raise ValidationError(f"IVR {name}: timeout {timeout} is outside 1..60 seconds")
    if not 1 <= retries <= 10:
        raise ValidationError(f"IVR {name}: retries {retries} is outside 1..10")
    pairs = parse_options(name, options)
    if not pairs and not extensions:
        raise ValidationError(f"IVR {name}: give at least one --option KEY=DEST, or --extensions")
    record = Ivr(name=name, prompt=prompt, options=pairs, timeout=timeout, retries=retries,
                 invalid_prompt=invalid_prompt, extensions=extensions)
    with store.write():
        check_flows(store, ivrs=[record])
        return store.ivrs.add(record)


def remove(store: Store, name: str) -> None:
    """Remove an IVR (refused while a route uses it)."""
    store.ivrs.remove(name)
