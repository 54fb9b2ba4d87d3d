"""compile_flow(): records -> Flow, and every way a number's routing can be refused."""
from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from vpbx.dialplan import (
    Flow,
    ForwardNode,
    HangupNode,
    IvrNode,
    PlayAndHangupNode,
    PlayNode,
    Target,
    VoicemailNode,
    compile_flow,
)
from vpbx.dialplan.testing import SAMPLE_NUMBER, sample_flow, sample_number
from vpbx.domain.errors import ValidationError
from vpbx.domain.records import Group, Ivr

LOGINS = {"alice", "bob"}


def flow(groups: dict[str, Group] | None = None, ivrs: dict[str, Ivr] | None = None,
         extensions: dict[str, str] | None = None, **number: object) -> Flow:
    return compile_flow(sample_number(**number), groups or {}, ivrs or {}, LOGINS, extensions)


def refused(match: str, groups: dict[str, Group] | None = None, ivrs: dict[str, Ivr] | None = None,
            extensions: dict[str, str] | None = None, **number: object) -> str:
    with pytest.raises(ValidationError, match=match) as info:
        flow(groups, ivrs, extensions, **number)
    message = str(info.value)
    assert message.startswith(f"number {SAMPLE_NUMBER}: ")
    return message


# -- what compiles --------------------------------------------------------------------------------------------------

def test_sip_route_is_a_single_target_forward() -> None:
    f = flow(route="sip:alice", forward_timeout=12)
    node = f.node("sip:alice")
    assert node == ForwardNode("sip:alice", (Target("sip", "alice"),), "simultaneous", 12.0, "fallback:forward",
                               dest="sip:alice")
    assert f.start == f.route_start == "sip:alice"
    assert f.number == SAMPLE_NUMBER and f.channels == 2
    assert f.node("fallback:forward") == HangupNode("fallback:forward", 16)
    assert f.node("fallback:ivr") == PlayAndHangupNode("fallback:ivr", "sound:vpbx/goodbye")


@pytest.mark.parametrize("route, target", [
    ("tel:+380501112233", Target("tel", "+380501112233")),
    ("uri:sip:desk@pbx.example.com", Target("uri", "sip:desk@pbx.example.com")),
    ("uri:sip:desk@10.0.0.7:5070", Target("uri", "sip:desk@10.0.0.7:5070")),
])
def test_tel_and_uri_routes(route: str, target: Target) -> None:
    node = flow(route=route).node(route)
    assert isinstance(node, ForwardNode) and node.targets == (target,)
    assert target.dest == route


def test_greeting_precedes_route() -> None:
    f = flow(route="hangup", greeting="welcome")
    assert f.start == "greeting" and f.route_start == "hangup"
    assert f.node("greeting") == PlayNode("greeting", "sound:vpbx/welcome", next="hangup")
    assert f.node("hangup") == HangupNode("hangup", 16, dest="hangup")


def test_no_route_plays_unavailable_and_skips_the_greeting() -> None:
    f = flow(greeting="welcome")
    assert f.start == f.route_start == "unavailable"
    assert f.node("unavailable") == PlayAndHangupNode("unavailable", "sound:vpbx/number-unavailable",
                                                      disposition="failed")
    assert "greeting" not in f.nodes


def test_forward_to_wins_over_route() -> None:
    f = flow(route="hangup", forward_to=("sip:alice", "tel:+380501112233"), forward_mode="sequential",
             forward_timeout=15, fallback="voicemail", vm_emails=("a@example.com",))
    assert f.route_start == "forward"
    assert f.node("forward") == ForwardNode(
        "forward", (Target("sip", "alice"), Target("tel", "+380501112233")), "sequential", 15.0, "voicemail",
        dest="forward")
    assert f.node("voicemail") == VoicemailNode("voicemail", ("a@example.com",))
    assert "hangup" not in f.nodes


def test_group_becomes_a_forward_with_its_strategy_and_timeout() -> None:
    groups = {"sales": Group("sales", ("sip:bob", "uri:sip:x@example.com"), strategy="sequential", timeout=9)}
    f = flow(groups, route="group:sales", fallback="play:sorry")
    assert f.node("group:sales") == ForwardNode(
        "group:sales", (Target("sip", "bob"), Target("uri", "sip:x@example.com")), "sequential", 9.0, "play:sorry",
        dest="group:sales")
    assert f.node("play:sorry") == PlayAndHangupNode("play:sorry", "sound:vpbx/sorry", dest="play:sorry")


def test_ivr_nodes_and_options() -> None:
    ivrs = {
        "main": Ivr("main", "menu", (("1", "sip:alice"), ("*", "ivr:main"), ("#", "ivr:sub")), timeout=7, retries=1),
        "sub": Ivr("sub", "sub-menu", (("0", "ivr:main"),), invalid_prompt="oops"),
    }
    f = flow(ivrs=ivrs, route="ivr:main")
    main = f.node("ivr:main")
    assert isinstance(main, IvrNode)
    assert main.prompt == "sound:vpbx/menu" and main.invalid_prompt == "sound:vpbx/invalid-option"
    assert dict(main.options) == {"1": "sip:alice", "*": "ivr:main", "#": "ivr:sub"}
    assert main.timeout == 7.0 and main.retries == 1 and main.fallback == "fallback:ivr" and main.extensions is None
    sub = f.node("ivr:sub")
    assert isinstance(sub, IvrNode) and sub.invalid_prompt == "sound:vpbx/oops"


def test_extensions_ivr_gets_the_extension_map() -> None:
    ivrs = {"dir": Ivr("dir", "dir", (("0", "hangup"),), extensions=True)}
    groups = {"g": Group("g", ("sip:bob",))}
    f = flow(groups, ivrs, {"101": "sip:alice", "2000": "group:g", "7": "ivr:dir"}, route="ivr:dir")
    node = f.node("ivr:dir")
    assert isinstance(node, IvrNode) and node.extensions is not None
    assert dict(node.extensions) == {"101": "sip:alice", "2000": "group:g", "7": "ivr:dir"}
    assert {"sip:alice", "group:g", "hangup"} <= set(f.nodes)


def test_extensions_are_only_compiled_when_an_extensions_ivr_is_reachable() -> None:
    f = flow(extensions={"101": "sip:nobody"}, route="sip:alice")   # not reachable, not checked
    assert "sip:nobody" not in f.nodes


def test_only_reachable_objects_are_checked() -> None:
    groups = {"broken": Group("broken", ()), "ok": Group("ok", ("sip:alice",))}
    ivrs = {"broken": Ivr("broken", "p", (("1", "group:missing"),))}
    f = flow(groups, ivrs, route="group:ok")
    assert set(f.nodes) == {"group:ok", "fallback:forward", "fallback:ivr"}


def test_looping_ivrs_with_prompts_are_fine() -> None:
    ivrs = {"a": Ivr("a", "pa", (("1", "ivr:b"), ("9", "ivr:a"))), "b": Ivr("b", "pb", (("1", "ivr:a"),))}
    f = flow(ivrs=ivrs, route="ivr:a")
    assert {"ivr:a", "ivr:b"} <= set(f.nodes)


def test_one_silent_ivr_in_a_loop_with_a_prompted_one_is_fine() -> None:
    ivrs = {"a": Ivr("a", "", (("1", "ivr:b"),)), "b": Ivr("b", "pb", (("1", "ivr:a"),))}
    f = flow(ivrs=ivrs, route="ivr:a")
    node = f.node("ivr:a")
    assert isinstance(node, IvrNode) and node.prompt is None


def test_flow_and_nodes_are_immutable() -> None:
    f = sample_flow(route="ivr:main")
    with pytest.raises(TypeError):
        f.nodes["x"] = f.nodes["ivr:main"]  # type: ignore[index]
    node = f.node("ivr:main")
    assert isinstance(node, IvrNode)
    with pytest.raises(TypeError):
        node.options["7"] = "hangup"  # type: ignore[index]
    with pytest.raises(FrozenInstanceError):
        f.start = "x"  # type: ignore[misc]


def test_compile_is_deterministic() -> None:
    assert sample_flow(route="ivr:main", greeting="hi") == sample_flow(route="ivr:main", greeting="hi")


# -- what is refused ------------------------------------------------------------------------------------------------

def test_ivr_option_pointing_to_a_missing_group() -> None:
    ivrs = {"main": Ivr("main", "menu", (("1", "group:sales"),))}
    msg = refused("IVR 'main' option 1: there is no group 'sales'", ivrs=ivrs, route="ivr:main")
    assert "create the group or point the option elsewhere" in msg


def test_route_to_missing_ivr() -> None:
    refused("route: there is no IVR 'main'; create the IVR or change the route", route="ivr:main")


def test_route_to_missing_sip_account() -> None:
    refused("route: there is no SIP account 'zed'; create the SIP account or change the route", route="sip:zed")


@pytest.mark.parametrize("route", ["sipp:alice", "alice", "group", "tel+380501112233", "forward", "greeting",
                                   "fallback:forward", "unavailable", "Hangup", "voicemail:x", " hangup"])
def test_unknown_destination_syntax(route: str) -> None:
    msg = refused("unknown destination", route=route)
    assert msg.endswith("use sip:LOGIN, group:NAME, ivr:NAME, tel:+E164, uri:sip:user@host[:port], voicemail, "
                        "hours:SCHEDULE?open=DEST&closed=DEST, play:PROMPT or hangup")


@pytest.mark.parametrize("route", ["tel:0441234567", "tel:+0441234567", "tel:+38044", "tel:380441234567",
                                   "tel:+3804412345678901"])
def test_bad_tel(route: str) -> None:
    refused("is not an E.164 number", route=route)


@pytest.mark.parametrize("route", ["uri:desk@host", "uri:sip:desk", "uri:sip:@host", "uri:sip:a@host:0",
                                   "uri:sip:a@host:70000", "uri:sip:a b@host", "uri:sip:a@-host"])
def test_bad_uri(route: str) -> None:
    refused("is not a SIP URI", route=route)


def test_group_without_members_is_a_forward_with_no_targets() -> None:
    refused("group 'empty' has no members, so a forward to it has no targets",
            {"empty": Group("empty", ())}, route="group:empty")


@pytest.mark.parametrize("member", ["group:other", "ivr:main", "voicemail", "hangup", "play:x"])
def test_group_members_must_be_dialable(member: str) -> None:
    refused(f"group 'g' member '{member}': only sip:LOGIN, tel:\\+E164 and uri:sip:user@host\\[:port\\] can be dialled",
            {"g": Group("g", ("sip:alice", member))}, route="group:g")


def test_group_member_with_missing_login() -> None:
    refused("group 'g' member 'sip:zed': there is no SIP account 'zed'", {"g": Group("g", ("sip:zed",))},
            route="group:g")


def test_group_bad_strategy_and_timeout() -> None:
    refused("strategy 'random'", {"g": Group("g", ("sip:alice",), strategy="random")}, route="group:g")
    refused("group 'g' timeout is 0", {"g": Group("g", ("sip:alice",), timeout=0)}, route="group:g")


def test_forward_to_entries_must_be_dialable() -> None:
    refused("forward target 'ivr:main': only sip:LOGIN", forward_to=("sip:alice", "ivr:main"))
    refused("forward target 'sip:zed': there is no SIP account 'zed'", forward_to=("sip:zed",))


def test_forward_mode_and_timeout() -> None:
    refused("forward mode 'parallel'", forward_to=("sip:alice",), forward_mode="parallel")
    refused("forward timeout is 0", forward_to=("sip:alice",), forward_timeout=0)
    refused("forward timeout is -5", route="sip:alice", forward_timeout=-5)


@pytest.mark.parametrize("fallback", ["busy", "sip:alice", "group:x", "ivr:main", "", "play:"])
def test_bad_fallback(fallback: str) -> None:
    with pytest.raises(ValidationError, match="fallback"):
        flow(route="hangup", fallback=fallback)


def test_fallback_is_checked_even_when_unused() -> None:
    refused("fallback 'busy' is not one of hangup, play:PROMPT or voicemail", route="hangup", fallback="busy")


def test_ivr_routing_to_itself_without_a_prompt() -> None:
    ivrs = {"loop": Ivr("loop", "", (("1", "ivr:loop"),))}
    msg = refused("IVR 'loop' option 1 routes back to IVR 'loop' in a loop and no IVR in the loop has a prompt",
                  ivrs=ivrs, route="ivr:loop")
    assert "give IVR 'loop' a prompt" in msg


def test_silent_ivr_loop_through_two_ivrs() -> None:
    ivrs = {"a": Ivr("a", "", (("1", "ivr:b"),)), "b": Ivr("b", "", (("2", "ivr:a"),))}
    refused("in a loop and no IVR in the loop has a prompt", ivrs=ivrs, route="ivr:a")


def test_silent_ivr_loop_through_an_extension() -> None:
    ivrs = {"a": Ivr("a", "", (), extensions=True)}
    refused("IVR 'a' extension 5 routes back to IVR 'a'", ivrs=ivrs, extensions={"5": "ivr:a"}, route="ivr:a")


@pytest.mark.parametrize("digit", ["x", "10", "", "a", "E"])
def test_ivr_option_keys(digit: str) -> None:
    refused("is not a keypad key", ivrs={"m": Ivr("m", "p", ((digit, "hangup"),))}, route="ivr:m")


def test_ivr_duplicate_option() -> None:
    refused("IVR 'm' option 1 is defined twice", ivrs={"m": Ivr("m", "p", (("1", "hangup"), ("1", "voicemail")))},
            route="ivr:m")


def test_ivr_option_with_unknown_destination() -> None:
    refused("IVR 'm' option 1: unknown destination 'menu'", ivrs={"m": Ivr("m", "p", (("1", "menu"),))},
            route="ivr:m")


def test_ivr_timeout_and_retries() -> None:
    refused("IVR 'm' timeout is 0", ivrs={"m": Ivr("m", "p", (), timeout=0)}, route="ivr:m")
    refused("IVR 'm' retries is -1", ivrs={"m": Ivr("m", "p", (), retries=-1)}, route="ivr:m")


@pytest.mark.parametrize("ext", ["10#", "", "abc", "1 2", "1" * 33])
def test_bad_extension_keys(ext: str) -> None:
    refused("cannot be typed on a keypad", ivrs={"d": Ivr("d", "p", (), extensions=True)}, extensions={ext: "hangup"},
            route="ivr:d")


def test_extension_to_missing_target() -> None:
    refused("extension 101: there is no SIP account 'zed'; create the SIP account or point the extension elsewhere",
            ivrs={"d": Ivr("d", "p", (), extensions=True)}, extensions={"101": "sip:zed"}, route="ivr:d")


@pytest.mark.parametrize("name", ["a/b", "../x", ".hidden", "two words", "x?y", "a:b", "a&b", "a#b", "50%"])
def test_bad_prompt_names(name: str) -> None:
    refused("is not a valid prompt name", route="hangup", greeting=name)
    refused("is not a valid prompt name", route=f"play:{name}")
    refused("is not a valid prompt name", ivrs={"m": Ivr("m", name, ())}, route="ivr:m")
    refused("invalid prompt", ivrs={"m": Ivr("m", "p", (), invalid_prompt=name)}, route="ivr:m")
