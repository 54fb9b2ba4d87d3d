"""vpbx.domain.validation: full-match semantics, hostile characters refused, valid values returned unchanged."""
from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpbx.domain import numbers
from vpbx.domain import validation as v
from vpbx.domain.errors import ValidationError

# U+2028 LINE SEPARATOR, U+2029 PARAGRAPH SEPARATOR, U+0085 NEL, DEL, C0 and C1 controls, NUL, a format character
HOSTILE = ["\n", "\r", "\r\n", "\u2028", "\u2029", "\x85", "\x7f", "\x00", "\t", "\x1b", "\x9b", "\x0b", "\x0c",
           "\u200b", "\ufeff"]

Validator = Callable[[str], object]

# validator, valid values (returned unchanged)
CASES: dict[str, tuple[Validator, list[str]]] = {
    "config_text": (lambda s: v.config_text("comment", s), ["", "Kyiv office", "Київ", "a-b_c.d,e (f) 'g' \"h\"",
                                                            "x" * v.TEXT_MAX]),
    "login": (v.login, ["alice", "101", "a.b_c-d", "A" * 64]),
    "name": (lambda s: v.name(s, "group"), ["sales", "Support-2", "x" * 64]),
    "host": (v.host, ["sip.example.net", "localhost", "127.0.0.1", "a-b.c", "a" * 63 + ".b"]),
    "password": (v.password, ["s3cret-pass", "Ключ-2025!", "p" * v.PASSWORD_MAX]),
    "prompt_name": (v.prompt_name, ["welcome", "after-hours_2", "x" * 64]),
    "email": (v.email, ["office@example.com", "a.b+c@mail.example.org"]),
    "dtmf": (v.dtmf, ["", "1", "12#", "0123456789*#ABCD"]),
    "dtmf_key": (v.dtmf_key, ["1", "*", "#", "A", "D"]),
    "e164": (lambda s: numbers.parse(s).number, ["+380441234567", "+14155552671"]),
}


def _params() -> list[tuple[str, str]]:
    return [(name, value) for name, (_, values) in CASES.items() for value in values]


@pytest.mark.parametrize("validator, value", _params())
def test_valid_values_pass_unchanged(validator: str, value: str) -> None:
    assert CASES[validator][0](value) == value


@pytest.mark.parametrize("char", HOSTILE)
@pytest.mark.parametrize("validator, value", [(n, x) for n, x in _params() if x])
def test_hostile_characters_are_refused_anywhere(validator: str, value: str, char: str) -> None:
    check = CASES[validator][0]
    for bad in (value + char, char + value, value[:1] + char + value[1:]):
        with pytest.raises(ValidationError) as info:
            check(bad)
        message = str(info.value)
        assert message.isprintable(), f"{validator} echoes a raw control character: {message!r}"
        assert "\n" not in message


@pytest.mark.parametrize("validator", list(CASES))
def test_trailing_newline_is_refused(validator: str) -> None:
    """`$` matches before a final newline; every check must be a full match (`bob\\n` injected config lines)."""
    check, values = CASES[validator]
    for value in values:
        if value:
            with pytest.raises(ValidationError):
                check(value + "\n")


@pytest.mark.parametrize("validator", list(CASES))
def test_very_long_values_are_refused_with_a_short_message(validator: str) -> None:
    check, values = CASES[validator]
    long = (values[-1] or "1") * (100_000 // max(1, len(values[-1])))
    with pytest.raises(ValidationError) as info:
        check(long)
    assert len(str(info.value)) < 400


@pytest.mark.parametrize("validator, value", [
    ("login", "-bob"), ("login", "bob smith"), ("login", "a" * 65), ("login", ""), ("login", "böb"),
    ("name", "a/b"), ("name", "[x]"),
    ("host", "-a.b"), ("host", "a..b"), ("host", "1.2.3"), ("host", "256.1.1.1"), ("host", "a_b.c"), ("host", ""),
    ("host", "١٢٧.0.0.1"), ("host", "a" * 64),
    ("password", "short"), ("password", "with space"), ("password", "p" * (v.PASSWORD_MAX + 1)),
    ("password", "has#hash"), ("password", "a=b;c[d]e"),
    ("prompt_name", ".hidden"), ("prompt_name", "a.b"), ("prompt_name", "a/b"), ("prompt_name", ""),
    ("email", "not-an-address"), ("email", "a@b"), ("email", "a b@c.com"), ("email", "x" * 250 + "@ex.com"),
    ("dtmf", "x"), ("dtmf", "1 2"), ("dtmf", "a"), ("dtmf", "1" * (v.DTMF_MAX + 1)),
    ("dtmf_key", ""), ("dtmf_key", "10"), ("dtmf_key", "E"), ("dtmf_key", "a"),
    ("config_text", "a;b"), ("config_text", "[section]"), ("config_text", "#include x"), ("config_text", "k=v"),
    ("config_text", "x" * (v.TEXT_MAX + 1)), ("config_text", "a\u00a0b"),
    ("e164", "+0441234567"), ("e164", "380441234567"), ("e164", "+٣٨٠٤٤١٢٣٤٥٦٧"), ("e164", "+38044"),
])
def test_invalid_values_are_refused(validator: str, value: str) -> None:
    with pytest.raises(ValidationError) as info:
        CASES[validator][0](value)
    assert str(info.value).isprintable()


def test_messages_name_the_field_and_the_fix() -> None:
    with pytest.raises(ValidationError, match=r"^trunk login 'bob\\n' is not valid; use 1-64 letters"):
        v.login("bob\n", "trunk login")
    with pytest.raises(ValidationError, match=r"^number \+380441234567: comment contains '\\u2028', which could "
                                              r"change the Asterisk config; remove newlines"):
        v.config_text("comment", "a\u2028b", obj="number +380441234567")
    with pytest.raises(ValidationError, match=r"^number \+3: comment is 256 characters long; keep it to 255"):
        v.config_text("comment", "x" * 256, obj="number +3")
    with pytest.raises(ValidationError, match=r"^DTMF '1x' contains 'x'; use only 0-9, \*, # and A-D$"):
        v.dtmf("1x")
    with pytest.raises(ValidationError, match="password must be at least 8 characters without spaces"):
        v.password("short")


def test_the_object_label_is_escaped_too() -> None:
    with pytest.raises(ValidationError) as info:
        v.config_text("comment", "a\nb", obj="number bob\n")
    assert str(info.value).startswith("number bob\\n: comment contains '\\n'")
    with pytest.raises(ValidationError) as info, v.about("SIP account bob\u2028"):
        v.login("bad login")
    assert str(info.value).startswith("SIP account bob\\u2028: login 'bad login'")


def test_about_adds_the_object_once() -> None:
    with pytest.raises(ValidationError, match=r"^trunk t1: server 'bad host' is not a valid host name"), \
            v.about("trunk t1"):
        v.host("bad host")
    with pytest.raises(ValidationError, match=r"^trunk t1: comment"), v.about("trunk t1"):
        v.config_text("comment", "a;b", obj="trunk t1")


def test_patterns_are_anchored_for_match_callers() -> None:
    """Code that still calls .match() (not .fullmatch()) must not accept a trailing newline either."""
    for rx, ok in ((v.LOGIN_RE, "bob"), (v.PROMPT_RE, "hi"), (v.EMAIL_RE, "a@b.co"), (v.HOST_RE, "h.example"),
                   (v.IPV4_RE, "10.0.0.1"), (numbers.E164_RE, "+380441234567")):
        assert rx.match(ok)
        assert not rx.match(ok + "\n") and not rx.search(ok + "\n") and not rx.match(ok + "x\n")


def test_one_dtmf_set_and_one_e164_pattern() -> None:
    from vpbx.dialplan import model

    assert frozenset("0123456789*#ABCD") == v.DTMF_DIGITS
    assert model.DTMF_DIGITS is v.DTMF_DIGITS
    assert numbers.is_e164("+380441234567") and not numbers.is_e164("+380441234567\n") and not numbers.is_e164(None)


def test_port() -> None:
    assert v.port(5060) == 5060
    for bad in (0, 65536, -1):
        with pytest.raises(ValidationError, match="use 1-65535"):
            v.port(bad)


@given(st.text(max_size=80))
def test_config_text_accepts_exactly_printable_text_without_config_syntax(text: str) -> None:
    ok = text.isprintable() and not any(c in text for c in v.FORBIDDEN)
    try:
        assert v.config_text("comment", text) == text
        assert ok
    except ValidationError as exc:
        assert not ok
        assert str(exc).isprintable()


@given(st.text(max_size=80))
def test_validators_never_leak_raw_text(text: str) -> None:
    for check, _ in CASES.values():
        try:
            assert check(text) == text
        except ValidationError as exc:
            assert str(exc).isprintable()
