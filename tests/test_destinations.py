"""vpbx.domain.destinations: every destination kind parses and formats back; everything else is refused."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpbx.domain import destinations as dst
from vpbx.domain.destinations import Destination, parse, parse_fallback, parse_target, try_parse
from vpbx.domain.errors import DestinationError, ValidationError

VALID = [
    ("sip:alice", Destination("sip", "alice")),
    ("sip:101", Destination("sip", "101")),
    ("sip:a.b_c-d", Destination("sip", "a.b_c-d")),
    ("group:sales", Destination("group", "sales")),
    ("ivr:main", Destination("ivr", "main")),
    ("tel:+380441234567", Destination("tel", "+380441234567")),
    ("tel:+1234567", Destination("tel", "+1234567")),
    ("uri:sip:desk@pbx.example.com", Destination("uri", "sip:desk@pbx.example.com")),
    ("uri:sip:desk@10.0.0.7:5070", Destination("uri", "sip:desk@10.0.0.7:5070")),
    ("uri:sip:a@h:65535", Destination("uri", "sip:a@h:65535")),
    ("play:closed", Destination("play", "closed")),
    ("play:after-hours_2", Destination("play", "after-hours_2")),
    ("voicemail", Destination("voicemail")),
    ("hangup", Destination("hangup")),
    ("hours:office?open=ivr:main&closed=voicemail", Destination("hours", "office?open=ivr:main&closed=voicemail")),
    ("hours:o.2?open=uri:sip:a@h:5070&closed=play:closed",
     Destination("hours", "o.2?open=uri:sip:a@h:5070&closed=play:closed")),
]

MALFORMED = [
    "", ":", "sip", "sip:", "sip:-bob", "sip:bob smith", "sip:" + "a" * 65, "sipp:alice", "SIP:alice", "alice",
    "group", "group:", "group:a b", "group:a/b", "ivr:", "ivr:x:y",
    "tel:", "tel:0441234567", "tel:+0441234567", "tel:+38044", "tel:380441234567", "tel:+3804412345678901",
    "tel:+38044123456a", "tel:+٣٨٠٤٤١٢٣٤٥٦٧",   # Arabic-Indic digits are digits to `\d`, not to E.164
    "uri:", "uri:desk@host", "uri:sip:desk", "uri:sip:@host", "uri:sip:a@host:0", "uri:sip:a@host:70000",
    "uri:sip:a b@host", "uri:sip:a@-host", "uri:sip:a@host-", "uri:sips:a@host",
    "play:", "play:a/b", "play:../x", "play:.hidden", "play:two words", "play:x?y", "play:a:b", "play:50%",
    "voicemail:x", "hangup:", "hangup:x", "Hangup", " hangup", "hangup ", "forward", "greeting", "fallback:forward",
    "unavailable",
    "hours", "hours:", "hours:office", "hours:office?open=ivr:main", "hours:office?closed=hangup&open=ivr:main",
    "hours:?open=hangup&closed=hangup", "hours:a b?open=hangup&closed=hangup", "hours:o?open=&closed=hangup",
    "hours:o?open=hangup&closed=", "hours:o?open=ivr:main&closed=hours:p?open=hangup&closed=hangup",
    "hours:o?open=uri:sip:a&b@h&closed=hangup", "hours:o?open=hangup&closed=voicemail&x=1",
    "Hours:o?open=hangup&closed=hangup",
]

HOSTILE_SUFFIXES = ["\n", "\r", "\r\n", "\u2028", "\u2029", "\x85", "\x00", "\x7f", "\t", "\x1b"]


@pytest.mark.parametrize("text, dest", VALID)
def test_every_kind_round_trips(text: str, dest: Destination) -> None:
    assert parse(text) == dest
    assert str(dest) == text
    assert str(parse(str(dest))) == text
    assert try_parse(text) == dest


def test_every_kind_is_covered() -> None:
    assert {d.kind for _, d in VALID} == set(dst.KINDS)
    assert set(dst.DIALLABLE) <= set(dst.KINDS) and set(dst.FALLBACKS) <= set(dst.KINDS)


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_is_refused(text: str) -> None:
    with pytest.raises(DestinationError) as info:
        parse(text)
    assert isinstance(info.value, ValidationError)
    assert repr(text)[:40] in str(info.value)
    assert try_parse(text) is None


@pytest.mark.parametrize("suffix", HOSTILE_SUFFIXES)
@pytest.mark.parametrize("text", [t for t, _ in VALID])
def test_hostile_characters_are_refused(text: str, suffix: str) -> None:
    for bad in (text + suffix, suffix + text, text[:3] + suffix + text[3:]):
        with pytest.raises(DestinationError) as info:
            parse(bad)
        message = str(info.value)
        assert message.isprintable(), message     # the bad character is shown escaped, never raw
        assert try_parse(bad) is None


def test_very_long_text_is_refused_with_a_short_message() -> None:
    for text in ("sip:" + "a" * 100_000, "uri:sip:" + "a" * 100_000 + "@h", "x" * 100_000):
        with pytest.raises(DestinationError) as info:
            parse(text)
        assert len(str(info.value)) < 400


def test_messages_name_the_text_and_give_the_syntax() -> None:
    with pytest.raises(DestinationError, match=r"unknown destination 'menu'; use sip:LOGIN, group:NAME") as info:
        parse("menu")
    assert info.value.kind is None and info.value.text == "menu"
    with pytest.raises(DestinationError) as info:
        parse("tel:+38044")
    assert str(info.value) == ("destination 'tel:+38044': '+38044' is not an E.164 number "
                               "(+, country code, digits: tel:+380441234567)")
    assert info.value.kind == "tel" and info.value.problem.startswith("'+38044' is not an E.164 number")
    with pytest.raises(DestinationError, match="is not a SIP URI like uri:sip:user@host"):
        parse("uri:sip:x")
    with pytest.raises(DestinationError, match="is not a valid prompt name"):
        parse("play:a/b")


def test_non_strings_are_refused() -> None:
    for value in (None, 5, b"hangup", ("sip", "a")):
        with pytest.raises(DestinationError):
            parse(value)  # type: ignore[arg-type]
        assert try_parse(value) is None


def test_construction_checks_too() -> None:
    for kind, value in (("sip", "bob\n"), ("bogus", "x"), ("hangup", "x"), ("tel", "+1"), ("play", "")):
        with pytest.raises(DestinationError):
            Destination(kind, value)
    assert Destination("hangup").value == ""


@pytest.mark.parametrize("text", ["sip:alice", "tel:+380441234567", "uri:sip:a@b"])
def test_targets(text: str) -> None:
    d = parse_target(text)
    assert d.diallable and str(d) == text


@pytest.mark.parametrize("text", ["group:g", "ivr:main", "voicemail", "hangup", "play:x", "foo:bar", "bob"])
def test_non_diallable_targets_are_refused(text: str) -> None:
    with pytest.raises(DestinationError, match=r"only sip:LOGIN, tel:\+E164 and uri:sip:user@host\[:port\] can be"):
        parse_target(text)


def test_diallable_kind_with_bad_syntax_is_a_syntax_error() -> None:
    with pytest.raises(DestinationError, match=r"is not an E\.164 number"):
        parse_target("tel:123")


@pytest.mark.parametrize("text", ["hangup", "voicemail", "play:closed"])
def test_fallbacks(text: str) -> None:
    assert str(parse_fallback(text)) == text


@pytest.mark.parametrize("text", ["busy", "sip:alice", "group:x", "ivr:main", "", "tel:+380441234567"])
def test_non_fallbacks_are_refused(text: str) -> None:
    with pytest.raises(DestinationError, match="hangup, play:PROMPT or voicemail"):
        parse_fallback(text)


def test_bad_prompt_fallback_is_a_syntax_error() -> None:
    with pytest.raises(DestinationError, match="is not a valid prompt name"):
        parse_fallback("play:")


@given(st.text(max_size=300))
def test_parse_is_total_and_canonical(text: str) -> None:
    """Any text either parses to a Destination that formats back to exactly that text, or is refused."""
    try:
        d = parse(text)
    except DestinationError as exc:
        assert str(exc).isprintable()
        return
    assert str(d) == text
    assert text.isprintable() and text.isascii()


@given(st.sampled_from([t for t, _ in VALID]), st.text(min_size=1, max_size=5), st.integers(0, 40))
def test_any_insertion_into_a_valid_destination_is_refused_or_still_canonical(text: str, extra: str, at: int) -> None:
    mutated = text[:at] + extra + text[at:]
    d = try_parse(mutated)
    assert d is None or str(d) == mutated
