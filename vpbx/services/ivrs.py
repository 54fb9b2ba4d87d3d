"""Voice menus: a prompt, and what each key does.

Rule: an option is `KEY=DEST`: KEY one key of the domain's DTMF set (`vpbx.domain.validation.DTMF_DIGITS`: 0-9, *, #,
A-D), DEST a destination string (`vpbx.domain.destinations.parse`). A new or changed IVR is checked by compiling a flow
routed to it (and the flows of the numbers that reach it) before it is written; the prompts it plays (its prompt,
invalid prompt, `play:` options) must be installed (`vpbx.services.routing.check_prompts`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from vpbx.domain import validation as validate
from vpbx.domain.errors import ValidationError
from vpbx.domain.records import Ivr
from vpbx.services.routing import check_flows, check_prompts, destination, prompts_named

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


def _check(record: Ivr, sounds_dir: Path | None) -> Ivr:
    """Every field of an IVR but its options' destinations (parsed by parse_options), and the prompts it plays."""
    name = record.name
    with validate.about(f"IVR {name}"):
        validate.prompt_name(record.prompt)
        if record.invalid_prompt:
            validate.prompt_name(record.invalid_prompt)
    if not 1 <= record.timeout <= 60:
        raise ValidationError(f"IVR {name}: timeout {record.timeout} is outside 1..60 seconds")
    if not 1 <= record.retries <= 10:
        raise ValidationError(f"IVR {name}: retries {record.retries} is outside 1..10")
    if not record.options and not record.extensions:
        raise ValidationError(f"IVR {name}: give at least one --option KEY=DEST, or --extensions")
    check_prompts(sounds_dir, f"IVR {name}", [record.prompt, record.invalid_prompt,
                                              *(p for _key, dest in record.options for p in prompts_named(dest))])
    return record


def add(store: Store, name: str, prompt: str, options: Sequence[str], *, timeout: int = 5, retries: int = 3,
        invalid_prompt: str | None = None, extensions: bool = False, sounds_dir: Path | None = None) -> Ivr:
    """Add an IVR menu; `extensions`: callers may also type an extension / organisation ID, ended by #.
    `sounds_dir`: where its prompts must be installed (see `vpbx.services.routing.check_prompts`)."""
    validate.name(name, "IVR")
    record = _check(Ivr(name=name, prompt=prompt, options=parse_options(name, options), timeout=timeout,
                        retries=retries, invalid_prompt=invalid_prompt or None, extensions=extensions), sounds_dir)
    with store.write():
        check_flows(store, ivrs=[record])
        return store.ivrs.add(record)


def update(store: Store, name: str, *, prompt: str | None = None, options: Sequence[str] = (),
           remove_keys: Sequence[str] = (), timeout: int | None = None, retries: int | None = None,
           invalid_prompt: str | None = None, extensions: bool | None = None,
           sounds_dir: Path | None = None) -> Ivr:
    """`vpbx ivr set`: change the given fields (None / empty: keep). `options` (KEY=DEST) add or replace keys,
    `remove_keys` drop keys (a key both removed and given is refused); `invalid_prompt` "" returns to the built-in.
    The changed IVR is checked like a new one, with the flows of every number that reaches it, before the one write."""
    validate.name(name, "IVR")
    obj = f"IVR {name}"
    if (prompt is None and not options and not remove_keys and timeout is None and retries is None
            and invalid_prompt is None and extensions is None):
        raise ValidationError(f"{obj}: nothing to change; give --prompt, --option, --remove-option, --timeout, "
                              f"--retries, --invalid-prompt or --extensions/--no-extensions")
    added = dict(parse_options(name, options))
    for key in remove_keys:
        if key not in validate.DTMF_DIGITS:
            raise ValidationError(f"{obj}: --remove-option {validate.shown(key)} is not one key of "
                                  f"{validate.DTMF_HELP}")
        if key in added:
            raise ValidationError(f"{obj}: key {key} is both removed and given; give it once")
    with store.write():
        old = store.ivrs.get(name)
        pairs = dict(old.options)
        for key in remove_keys:
            if key not in pairs:
                raise ValidationError(f"{obj}: has no option for key {key} to remove; see `vpbx ivr show {name}`")
            del pairs[key]
        pairs.update(added)
        record = _check(replace(
            old, prompt=old.prompt if prompt is None else prompt, options=tuple(pairs.items()),
            timeout=old.timeout if timeout is None else timeout, retries=old.retries if retries is None else retries,
            invalid_prompt=old.invalid_prompt if invalid_prompt is None else (invalid_prompt or None),
            extensions=old.extensions if extensions is None else extensions), sounds_dir)
        check_flows(store, ivrs=[record])
        return store.ivrs.update(record)


def remove(store: Store, name: str) -> None:
    """Remove an IVR (refused while a route uses it)."""
    store.ivrs.remove(name)
