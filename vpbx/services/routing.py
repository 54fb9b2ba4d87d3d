"""Where calls to a number go: a route to one destination, or a forward to several targets, with a greeting, a
fallback and voicemail recipients; and the check that every call flow a change touches still compiles.

Rule: every destination string is parsed by `vpbx.domain.destinations` (route: any kind; forward targets and group
members: sip:, tel:, uri:; fallback: hangup, voicemail, play:, or hours: between those) before anything else, and the
change is then checked whole by compiling every flow it affects (`check_flows`: missing groups, IVRs, SIP accounts,
schedules, silent IVR loops) with the change applied, inside the transaction that writes it. A number whose flow
can reach voicemail (its route or fallback, an IVR option, an `hours:` branch) needs a recipient (--vm-email): the
compiled flow decides, so every way of reaching voicemail is covered. Every prompt a change names (a greeting,
`play:PROMPT` anywhere in a destination, an IVR's prompts) must be installed (`check_prompts`).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vpbx.dialplan import compile_flow
from vpbx.dialplan.model import FORWARD_MODES, VoicemailNode
from vpbx.domain import destinations
from vpbx.domain import validation as validate
from vpbx.domain.destinations import Destination
from vpbx.domain.errors import DestinationError, NotFoundError, ValidationError
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


def prompts_named(text: str | None) -> list[str]:
    """The prompts destination string `text` plays (`play:PROMPT`, also as an `hours:` branch)."""
    d = destinations.try_parse(text)
    return [] if d is None else [x.value for x in d.names() if x.kind == "play"]


def check_prompts(sounds_dir: Path | None, where: str, names: Iterable[str | None]) -> None:
    """Every prompt in `names` (None skipped) is installed in some language under `sounds_dir`, or built in;
    NotFoundError names `where` and the fix. `sounds_dir` None: no install to look in (a caller with no config, e.g.
    a unit test of the flow rules); the CLI always passes the config's sounds dir."""
    if sounds_dir is None:
        return
    from vpbx.services import prompts  # numpy / soundfile: loaded only when a prompt is named

    for name in names:
        if name is not None and not prompts.installed(sounds_dir, name):
            raise NotFoundError(f"{validate.plain(where)}: prompt {name} is not installed; upload it with "
                                f"`vpbx prompt add {name} FILE` (see `vpbx prompt list`)")


def check_voicemail(number: Number, flow_nodes: Iterable[object]) -> None:
    """A number whose flow can reach voicemail needs at least one recipient: every voicemail node of its compiled flow
    has an address to deliver to."""
    if any(isinstance(n, VoicemailNode) and not n.emails for n in flow_nodes):
        raise ValidationError(f"number {number.number}: voicemail needs at least one --vm-email address (its calls "
                              f"can reach voicemail: route, fallback or an IVR option); give --vm-email ADDRESS to "
                              f"`vpbx number route` or `vpbx number forward`")


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
    given = {n.number for n in numbers}
    # stored numbers routed (also through an hours: branch) to a changed IVR: its voicemail options need their
    # recipients (a group's members are dialable targets only, so a group change cannot add voicemail)
    pending, seen = [i.name for i in ivrs], {i.name for i in ivrs}
    while pending:                              # ... also through IVRs that lead to it
        for user in store.ivrs.used_by(pending.pop()):
            kind, _, key = user.partition(" ")
            if kind == "number" and key not in given:
                targets.append(store.numbers.get(key))
                given.add(key)
            elif kind == "IVR" and key not in seen:
                pending.append(key)
                seen.add(key)
    targets += [Number(number=PROBE_NUMBER, route=str(Destination("group", g.name))) for g in groups]
    targets += [Number(number=PROBE_NUMBER, route=str(Destination("ivr", i.name))) for i in ivrs]
    for target in targets:
        try:
            flow = compile_flow(target, all_groups, all_ivrs, logins, extensions, schedules=all_schedules,
                                zones=zones)
        except ValidationError as exc:
            if target.number != PROBE_NUMBER:
                raise
            raise ValidationError(str(exc).replace(f"number {PROBE_NUMBER}: ", "")) from None
        if target.number != PROBE_NUMBER:
            check_voicemail(target, flow.nodes.values())


def _common(obj: str, greeting: str | None, fallback: str | None, vm_emails: Sequence[str]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if greeting is not None:
        changes["greeting"] = validate.prompt_name(greeting) if greeting else None
    if fallback is not None:
        changes["fallback"] = destination(fallback, f"{obj}: fallback", destinations.parse_fallback)
    if vm_emails:
        changes["vm_emails"] = tuple(validate.email(v) for v in vm_emails)
    return changes


def _apply(store: Store, numbers: Sequence[str], changes: dict[str, Any], sounds_dir: Path | None) -> list[Number]:
    obj = f"number {', '.join(numbers)}"
    check_prompts(sounds_dir, obj, [changes.get("greeting"), *prompts_named(changes.get("route")),
                                    *prompts_named(changes.get("fallback"))])
    with store.write():
        updated = [replace(store.numbers.get(n), **changes) for n in numbers]
        check_flows(store, updated)
        return store.numbers.update(numbers, **changes)


def route(store: Store, numbers: Sequence[str], dest: str, *, greeting: str | None = None,
          fallback: str | None = None, vm_emails: Sequence[str] = (), sounds_dir: Path | None = None
          ) -> list[Number]:
    """Route calls to `numbers` to destination string `dest` (replacing a forward). greeting '' removes it.
    `sounds_dir`: where the prompts it names must be installed (see `check_prompts`)."""
    obj = f"number {', '.join(numbers)}"
    changes: dict[str, Any] = {"route": destination(dest, f"{obj}: route"), "forward_to": ()}
    changes.update(_common(obj, greeting, fallback, vm_emails))
    return _apply(store, numbers, changes, sounds_dir)


def forward(store: Store, numbers: Sequence[str], targets: Sequence[str], mode: str, timeout: int, *,
            greeting: str | None = None, fallback: str | None = None, vm_emails: Sequence[str] = (),
            sounds_dir: Path | None = None) -> list[Number]:
    """Forward calls to `numbers` to every target at once (simultaneous) or one after another (sequential);
    `timeout` seconds overall / per target. Replaces a route."""
    obj = f"number {', '.join(numbers)}"
    checked = ring_targets(obj, targets, mode, timeout, missing="a forward needs at least one --to target",
                           target="forward target", mode_word="forward mode", timeout_word="forward timeout")
    changes: dict[str, Any] = {"route": None, "forward_to": checked, "forward_mode": mode, "forward_timeout": timeout}
    changes.update(_common(obj, greeting, fallback, vm_emails))
    return _apply(store, numbers, changes, sounds_dir)
