"""Where calls to a number go: a route to one destination, or a forward to several targets, with a greeting, a
fallback and voicemail recipients; and the check that every call flow a change touches still compiles.

Rule: every destination string is parsed by `vpbx.domain.destinations` (route: any kind; forward targets and group
members: sip:, tel:, uri:; fallback: hangup, voicemail, play:, or hours: between those) before anything else, and the
change is then checked whole by compiling every flow it affects (`check_flows`: missing groups, IVRs, SIP accounts,
schedules, silent IVR loops) with the change applied, inside the transaction that writes it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from vpbx.dialplan import compile_flow
from vpbx.dialplan.model import FORWARD_MODES
from vpbx.domain import destinations
from vpbx.domain import validation as validate
from vpbx.domain.destinations import Destination
from vpbx.domain.errors import DestinationError, ValidationError
from vpbx.domain.records import Group, Ivr, Number, Schedule
from vpbx.services.flows import flow_inputs, schedule_inputs

if TYPE_CHECKING:
    from vpbx.storage.store import Store

PROBE_NUMBER = "+10000000000"   # stands in for "a number routed here" when a group or IVR is checked alone


def destination(text: str, where: str, parse: Callable[[str], Destination] = destinations.parse) -> str:
    """`text` checked by `parse` (a `vpbx.domain.destinations` parser); ValidationError names `where` it was given."""
    try:
        return str(parse(text))
    except DestinationError as exc:
        raise ValidationError(f"{validate.plain(where)}: {exc.problem}") from None


def ring_targets(obj: str, targets: Sequence[str], mode: str, timeout: int, *, missing: str, target: str,
                 mode_word: str, timeout_word: str) -> tuple[str, ...]:
    """What rings (a number's forward targets, a group's members): at least one dialable target (sip:, tel:, uri:),
    rung in one of FORWARD_MODES for 1..600 seconds; the targets checked. ValidationError names `obj` and the word."""
    if not targets:
        raise ValidationError(f"{validate.plain(obj)}: {missing}")
    if mode not in FORWARD_MODES:
        raise ValidationError(f"{validate.plain(obj)}: {mode_word} {mode!r} is not simultaneous or sequential")
    if not 1 <= timeout <= 600:
        raise ValidationError(f"{validate.plain(obj)}: {timeout_word} {timeout} is outside 1..600 seconds")
    return tuple(destination(t, f"{obj}: {target}", destinations.parse_target) for t in targets)


def check_flows(store: Store, numbers: Sequence[Number] = (), groups: Sequence[Group] = (),
                ivrs: Sequence[Ivr] = (), schedules: Sequence[Schedule] = ()) -> None:
    """Compile the flows a change affects with the change applied; raises ValidationError before anything is written.
    A new or changed group / IVR is checked as if a number routed to it; `schedules` replace stored ones."""
    all_groups, all_ivrs, logins, extensions = flow_inputs(store, groups, ivrs)
    all_schedules, zones = schedule_inputs(store, schedules=schedules)
    targets = list(numbers)
    targets += [Number(number=PROBE_NUMBER, route=str(Destination("group", g.name))) for g in groups]
    targets += [Number(number=PROBE_NUMBER, route=str(Destination("ivr", i.name))) for i in ivrs]
    for target in targets:
        try:
            compile_flow(target, all_groups, all_ivrs, logins, extensions, schedules=all_schedules, zones=zones)
        except ValidationError as exc:
            if target.number != PROBE_NUMBER:
                raise
            raise ValidationError(str(exc).replace(f"number {PROBE_NUMBER}: ", "")) from None


def _common(obj: str, greeting: str | None, fallback: str | None, vm_emails: Sequence[str]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if greeting is not None:
        changes["greeting"] = validate.prompt_name(greeting) if greeting else None
    if fallback is not None:
        changes["fallback"] = destination(fallback, f"{obj}: fallback", destinations.parse_fallback)
    if vm_emails:
        changes["vm_emails"] = tuple(validate.email(v) for v in vm_emails)
    return changes


def _apply(store: Store, numbers: Sequence[str], changes: dict[str, Any]) -> list[Number]:
    with store.write():
        updated = [replace(store.numbers.get(n), **changes) for n in numbers]
        for n in updated:
            fallback = destinations.try_parse(n.fallback)
            if fallback is not None and any(d.kind == "voicemail" for d in fallback.names()) and not n.vm_emails:
                raise ValidationError(f"number {n.number}: voicemail needs at least one --vm-email address")
        check_flows(store, updated)
        return store.numbers.update(numbers, **changes)


def route(store: Store, numbers: Sequence[str], dest: str, *, greeting: str | None = None,
          fallback: str | None = None, vm_emails: Sequence[str] = ()) -> list[Number]:
    """Route calls to `numbers` to destination string `dest` (replacing a forward). greeting '' removes it."""
    obj = f"number {', '.join(numbers)}"
    changes: dict[str, Any] = {"route": destination(dest, f"{obj}: route"), "forward_to": ()}
    changes.update(_common(obj, greeting, fallback, vm_emails))
    if dest == "voicemail" and not vm_emails:
        changes.setdefault("vm_emails", ())
    return _apply(store, numbers, changes)


def forward(store: Store, numbers: Sequence[str], targets: Sequence[str], mode: str, timeout: int, *,
            greeting: str | None = None, fallback: str | None = None, vm_emails: Sequence[str] = ()) -> list[Number]:
    """Forward calls to `numbers` to every target at once (simultaneous) or one after another (sequential);
    `timeout` seconds overall / per target. Replaces a route."""
    obj = f"number {', '.join(numbers)}"
    checked = ring_targets(obj, targets, mode, timeout, missing="a forward needs at least one --to target",
                           target="forward target", mode_word="forward mode", timeout_word="forward timeout")
    changes: dict[str, Any] = {"route": None, "forward_to": checked, "forward_mode": mode, "forward_timeout": timeout}
    changes.update(_common(obj, greeting, fallback, vm_emails))
    return _apply(store, numbers, changes)
