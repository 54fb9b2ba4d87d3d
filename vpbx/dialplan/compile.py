"""Records -> Flow: `compile_flow()` turns a Number and the groups / IVRs / SIP logins it may use into a checked Flow.

Rule: pure and total. Every problem a user can cause (missing group/IVR/SIP account, bad destination syntax, a forward
with no targets, a silent IVR loop, bad timeouts...) raises `vpbx.domain.errors.ValidationError` whose message names the
number, the object and the fix. A Flow that compiles cannot fail at call time for want of a node.

Only what the number can reach is compiled and checked (plus its fallback, always). Node ids are the destination
strings (`ivr:main`, `group:sales`, `sip:alice`, `voicemail`, `play:closed`, `hangup`,
`hours:office?open=ivr:main&closed=voicemail`: a ScheduleNode whose branches are nodes too) plus the fixed ids
`greeting`, `forward` (the number's forward_to), `unavailable`, `fallback:forward` and `fallback:ivr` (a `hangup`
fallback: silent after a forward, "goodbye" after an IVR).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace

from vpbx.dialplan.model import (
    CAUSE_NORMAL,
    FORWARD_MODES,
    MAX_EXTENSION_DIGITS,
    PROMPT_GOODBYE,
    PROMPT_INVALID,
    PROMPT_UNAVAILABLE,
    Flow,
    ForwardNode,
    HangupNode,
    IvrNode,
    Node,
    PlayAndHangupNode,
    PlayNode,
    ScheduleNode,
    Target,
    VoicemailNode,
    prompt_media,
)
from vpbx.domain.destinations import (
    DESTINATION_SYNTAX,
    DIALLABLE,
    FALLBACK_SYNTAX,
    FALLBACKS,
    TARGET_SYNTAX,
    Destination,
    is_fallback,
    kind_of,
    parse,
)
from vpbx.domain.errors import DestinationError, ValidationError
from vpbx.domain.records import Group, Ivr, Number, Schedule
from vpbx.domain.schedules import Hours, ZoneOffsets
from vpbx.domain.validation import DTMF_DIGITS, plain, shown

__all__ = ["compile_flow"]

# What a caller may type in an `--extensions` IVR: any key but '#', which ends the number.
_EXTENSION_KEYS = "".join(sorted(DTMF_DIGITS - {"#"}))
_EXTENSION = re.compile(rf"[{re.escape(_EXTENSION_KEYS)}]{{1,{MAX_EXTENSION_DIGITS}}}")


def compile_flow(
    number: Number,
    groups: dict[str, Group],
    ivrs: dict[str, Ivr],
    sip_logins: set[str],
    extensions: dict[str, str] | None = None,
    *,
    schedules: Mapping[str, Schedule] | None = None,
    zones: Mapping[str, ZoneOffsets] | None = None,
    record: bool = False,
    record_prompt: str | None = None,
) -> Flow:
    """Compile `number`'s routing into a Flow, or raise ValidationError naming what is wrong and how to fix it.

    `groups` / `ivrs` are keyed by name; `sip_logins` are the SIP accounts that exist; `extensions` maps what a caller
    may type in an `--extensions` IVR (an extension or organisation id) to a destination string. `schedules` are
    keyed by name, `zones` by time-zone name: the offsets the edge computed (zoneinfo) for the calls' time window.
    `record` / `record_prompt`: the call is recorded, announced by that prompt (a name; ignored when not recording),
    as `vpbx.domain.recording.recording_for` decided.
    """
    compiler = _Compiler(number, groups, ivrs, sip_logins, extensions or {})
    compiler.schedules = schedules or {}
    compiler.zones = zones or {}
    flow = compiler.run()
    if not record:
        return flow
    if record_prompt is None:
        return replace(flow, record=True)
    compiler.prompt(record_prompt, "record prompt")      # a prompt name, as `play:PROMPT` takes it
    # the announcement is the call's first node: played to the caller (answered) before anything else, and not
    # again to a call adopted after an engine restart (that one starts at `route_start` or where it was)
    announce = PlayNode(RECORD_ANNOUNCEMENT, prompt_media(record_prompt), next=flow.start)
    return replace(flow, record=True, record_prompt=record_prompt, start=announce.id,
                   nodes={**flow.nodes, announce.id: announce})


RECORD_ANNOUNCEMENT = "record:announce"     # the node id of a recorded call's announcement


class _Compiler:
    def __init__(
        self,
        number: Number,
        groups: dict[str, Group],
        ivrs: dict[str, Ivr],
        sip_logins: set[str],
        extensions: dict[str, str],
    ) -> None:
        self.number = number
        self.groups = groups
        self.ivrs = ivrs
        self.sip_logins = sip_logins
        self.extensions = extensions
        self.nodes: dict[str, Node] = {}
        self.pending: set[str] = set()      # IVR ids being compiled (options may point back to them)
        self.ext_map: dict[str, str] | None = None
        self.fb_forward = ""
        self.fb_ivr = ""
        self.schedules: Mapping[str, Schedule] = {}
        self.zones: Mapping[str, ZoneOffsets] = {}

    # -- errors -----------------------------------------------------------------------------------------------------

    def fail(self, message: str) -> ValidationError:
        return ValidationError(f"number {plain(self.number.number)}: {message}")

    # -- entry ------------------------------------------------------------------------------------------------------

    def run(self) -> Flow:
        n = self.number
        self.fallbacks()
        if n.forward_to:
            route_start = self.forward_to()
        elif n.route:
            route_start = self.dest(n.route, "route", "change the route")
        else:
            route_start = self.add(PlayAndHangupNode(
                "unavailable", prompt_media(PROMPT_UNAVAILABLE), dest=None, disposition="failed",
            ))
            return Flow(n.number, n.channels, route_start, route_start, self.nodes)
        start = route_start
        if n.greeting:
            start = self.add(PlayNode("greeting", self.prompt(n.greeting, "greeting"), next=route_start))
        self.check_silent_loops()
        return Flow(n.number, n.channels, start, route_start, self.nodes)

    def add(self, node: Node) -> str:
        self.nodes[node.id] = node
        return node.id

    # -- pieces -----------------------------------------------------------------------------------------------------

    def prompt(self, name: object, where: str) -> str:
        """A prompt name is what `play:PROMPT` accepts (letters, digits, '_', '-'): nothing that could change the
        meaning of the `sound:vpbx/NAME` media URI or reach outside the prompt directory."""
        if not isinstance(name, str):
            raise self.fail(f"{where}: {shown(name)} is not a valid prompt name; use the name of an uploaded prompt")
        try:
            Destination("play", name)
        except DestinationError as exc:
            raise self.fail(f"{where}: {exc.problem}; use the name of an uploaded prompt") from None
        return prompt_media(name)

    def parse(self, text: str, where: str, fix: str) -> Destination:
        """Check the syntax of destination string `text` (found at `where`)."""
        try:
            return parse(text)
        except DestinationError as exc:
            # an unknown kind's problem already ends with the syntax to use
            raise self.fail(f"{where}: {exc.problem}" if exc.kind is None else f"{where}: {exc.problem}; {fix}") \
                from None

    def positive(self, value: object, what: str, fix: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise self.fail(f"{what} is {shown(value)}; {fix}")
        return float(value)

    def fallbacks(self) -> None:
        fb = self.number.fallback
        if fb == "hangup":
            self.fb_forward = self.add(HangupNode("fallback:forward", CAUSE_NORMAL))
            self.fb_ivr = self.add(PlayAndHangupNode("fallback:ivr", prompt_media(PROMPT_GOODBYE)))
        elif isinstance(fb, str) and kind_of(fb) in FALLBACKS:
            self.fb_forward = self.fb_ivr = self.dest(fb, "fallback", f"set the fallback to {FALLBACK_SYNTAX}")
        elif isinstance(fb, str) and kind_of(fb) == "hours":
            fix = f"set the fallback to {FALLBACK_SYNTAX}"
            if not is_fallback(self.parse(fb, "fallback", fix)):
                raise self.fail(f"fallback {shown(fb)}: a schedule route used as the fallback branches to hangup, "
                                f"play:PROMPT or voicemail; {fix}")
            self.fb_forward = self.fb_ivr = self.dest(fb, "fallback", fix)
        else:
            raise self.fail(f"fallback {shown(fb)} is not one of {FALLBACK_SYNTAX}; set the fallback to one of those")

    def forward_to(self) -> str:
        n = self.number
        if n.forward_mode not in FORWARD_MODES:
            raise self.fail(f"forward mode {shown(n.forward_mode)} is not simultaneous or sequential; set one of those")
        timeout = self.positive(n.forward_timeout, "forward timeout", "set a forward timeout of at least 1 second")
        fix = "remove it from the forward targets or fix it"
        targets = tuple(self.target(t, f"forward target {shown(t)}", fix) for t in n.forward_to)
        return self.add(ForwardNode("forward", targets, n.forward_mode, timeout, self.fb_forward, dest="forward"))

    def target(self, text: object, where: str, fix: str) -> Target:
        if not isinstance(text, str):
            raise self.fail(f"{where}: not a destination string; {fix}")
        if kind_of(text) not in DIALLABLE:
            raise self.fail(f"{where}: only {TARGET_SYNTAX} can be dialled; {fix}")
        d = self.parse(text, where, fix)
        if d.kind == "sip" and d.value not in self.sip_logins:
            raise self.fail(f"{where}: there is no SIP account {shown(d.value)}; create the SIP account or {fix}")
        return Target(d.kind, d.value)

    def dest(self, text: object, where: str, fix: str) -> str:
        """Compile destination string `text` (found at `where`) into a node; return its id (the text itself)."""
        if not isinstance(text, str):
            raise self.fail(f"{where}: {shown(text)} is not a destination ({DESTINATION_SYNTAX}); {fix}")
        d = self.parse(text, where, fix)
        if text in self.nodes or text in self.pending:
            return text
        n = self.number
        if d.kind == "hangup":
            return self.add(HangupNode(text, CAUSE_NORMAL, dest=text))
        if d.kind == "voicemail":
            return self.add(VoicemailNode(text, tuple(n.vm_emails)))
        if d.kind == "play":
            return self.add(PlayAndHangupNode(text, self.prompt(d.value, where), dest=text))
        if d.kind == "group":
            return self.group(d.value, where, fix)
        if d.kind == "ivr":
            return self.ivr(d.value, where, fix)
        if d.kind == "hours":
            return self.hours(d, where, fix)
        timeout = self.positive(n.forward_timeout, "forward timeout", "set a forward timeout of at least 1 second")
        target = self.target(text, where, fix)
        return self.add(ForwardNode(text, (target,), "simultaneous", timeout, self.fb_forward, dest=text))

    def group(self, name: str, where: str, fix: str) -> str:
        group = self.groups.get(name)
        if group is None:
            raise self.fail(f"{where}: there is no group {shown(name)}; create the group or {fix}")
        g = f"group {shown(name)}"
        if not group.members:
            raise self.fail(f"{g} has no members, so a forward to it has no targets; add members to the group or {fix}")
        if group.strategy not in FORWARD_MODES:
            raise self.fail(
                f"{g}: strategy {shown(group.strategy)} is not simultaneous or sequential; set one of those"
            )
        timeout = self.positive(group.timeout, f"{g} timeout", "set a group timeout of at least 1 second")
        targets = tuple(
            self.target(m, f"{g} member {shown(m)}", "remove the member or fix it") for m in group.members
        )
        node_id = f"group:{name}"
        return self.add(ForwardNode(node_id, targets, group.strategy, timeout, self.fb_forward, dest=node_id))

    def ivr(self, name: str, where: str, fix: str) -> str:
        ivr = self.ivrs.get(name)
        if ivr is None:
            raise self.fail(f"{where}: there is no IVR {shown(name)}; create the IVR or {fix}")
        node_id = f"ivr:{name}"
        label = f"IVR {shown(name)}"
        self.pending.add(node_id)
        timeout = self.positive(ivr.timeout, f"{label} timeout", "set an IVR timeout of at least 1 second")
        if isinstance(ivr.retries, bool) or not isinstance(ivr.retries, int) or ivr.retries < 0:
            raise self.fail(f"{label} retries is {shown(ivr.retries)}; set retries to 0 or more")
        prompt = self.prompt(ivr.prompt, f"{label} prompt") if ivr.prompt else None
        invalid = (
            self.prompt(ivr.invalid_prompt, f"{label} invalid prompt") if ivr.invalid_prompt
            else prompt_media(PROMPT_INVALID)
        )
        options: dict[str, str] = {}
        for entry in ivr.options:
            if not isinstance(entry, (tuple, list)) or len(entry) != 2:
                raise self.fail(f"{label} option {shown(entry)} is not a (key, destination) pair; fix the option")
            digit, dest = entry
            if not isinstance(digit, str) or digit not in DTMF_DIGITS:
                raise self.fail(f"{label} option {shown(digit)} is not a keypad key; use one of 0-9 * # A B C D")
            opt = f"{label} option {digit}"
            if digit in options:
                raise self.fail(f"{opt} is defined twice; keep one")
            options[digit] = self.dest(dest, opt, "point the option elsewhere")
        ext_map = self.extension_map() if ivr.extensions else None
        self.pending.discard(node_id)
        return self.add(IvrNode(
            node_id, name, prompt, options, timeout, ivr.retries, invalid, self.fb_ivr, extensions=ext_map,
            dest=node_id,
        ))

    def hours(self, d: Destination, where: str, fix: str) -> str:
        """A business-hours branch: a ScheduleNode whose open / closed branches are compiled like any destination."""
        name, (open_dest, closed_dest) = d.schedule, d.branches
        assert name is not None
        schedule = self.schedules.get(name)
        if schedule is None:
            raise self.fail(f"{where}: there is no schedule {shown(name)}; create it with `vpbx schedule add {name} "
                            f"--tz ZONE --open DAYS HH:MM-HH:MM` or {fix}")
        zone = self.zones.get(schedule.tz)
        if zone is None:
            raise self.fail(f"schedule {shown(name)}: time zone {shown(schedule.tz)} is not known on this machine; "
                            f"install the tz database (tzdata) or `vpbx schedule set {name} --tz ZONE`")
        try:
            hours = Hours.of(schedule, zone)
        except ValidationError as exc:
            raise self.fail(str(exc)) from None
        node_id = str(d)
        self.pending.add(node_id)          # a branch may lead back here through an IVR
        open_id = self.dest(str(open_dest), f"{where} (open)", fix)
        closed_id = self.dest(str(closed_dest), f"{where} (closed)", fix)
        self.pending.discard(node_id)
        return self.add(ScheduleNode(node_id, hours, open_id, closed_id))

    def extension_map(self) -> dict[str, str]:
        """Typed extension -> node id. Node ids are the destination strings, so the map is complete before the
        destinations are compiled (they may lead back to an extension IVR)."""
        if self.ext_map is None:
            for ext in self.extensions:
                if not isinstance(ext, str) or not _EXTENSION.fullmatch(ext):
                    raise self.fail(
                        f"extension {shown(ext)} cannot be typed on a keypad "
                        f"(1-{MAX_EXTENSION_DIGITS} of 0-9 * A B C D); rename it"
                    )
            self.ext_map = dict(self.extensions)
            for ext, dest in self.extensions.items():
                node_id = self.dest(dest, f"extension {ext}", "point the extension elsewhere")
                assert node_id == dest
        return self.ext_map

    # -- whole-flow checks ------------------------------------------------------------------------------------------

    def check_silent_loops(self) -> None:
        """Refuse a loop of IVRs none of which has a prompt: the caller would press keys in silence forever."""
        silent = {nid: node for nid, node in self.nodes.items() if isinstance(node, IvrNode) and node.prompt is None}

        def through_schedules(how: str, target: str) -> list[tuple[str, str]]:
            node = self.nodes.get(target)
            if not isinstance(node, ScheduleNode):
                return [(how, target)]
            name = node.hours.name
            return [(f"{how} ({name} open)", node.open), (f"{how} ({name} closed)", node.closed)]

        def edges(node: IvrNode) -> list[tuple[str, str]]:
            out = [(f"option {d}", t) for d, t in node.options.items()]
            if node.extensions:
                out += [(f"extension {e}", t) for e, t in node.extensions.items()]
            out = [edge for how, t in out for edge in through_schedules(how, t)]
            return [(how, t) for how, t in out if t in silent]

        state: dict[str, int] = {}   # 1 on the stack, 2 done

        def visit(nid: str) -> None:
            state[nid] = 1
            node = silent[nid]
            for how, target in edges(node):
                if state.get(target) == 1:
                    other = silent[target].name
                    raise self.fail(
                        f"IVR {node.name!r} {how} routes back to IVR {other!r} in a loop and no IVR in the loop has "
                        f"a prompt, so the caller would hear silence forever; give IVR {other!r} a prompt or point "
                        f"the {how} elsewhere"
                    )
                if target not in state:
                    visit(target)
            state[nid] = 2

        for nid in sorted(silent):
            if nid not in state:
                visit(nid)
