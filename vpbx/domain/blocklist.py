"""The caller blocklist: its rules and the one decision "which rule refuses caller X calling number N".

Rule: pure, no I/O. The store pre-selects rules with one indexed query (`candidates`); `decide` makes the decision
over whatever rules it is given, so the engine, `vpbx block list` and the tests all judge calls the same way.

A rule names a caller and a scope:

- caller: an E.164 number (exact), a `+digits` prefix (`prefix=True`: every caller whose number starts with it), or
  `anonymous` (a caller who shows no number: withheld, `anonymous`, `unknown`, `restricted`, `private`, empty);
- scope: one number of this install (`number`), every number a customer's account holds (`account`), or the whole
  install (neither).

The decision: there are no "allow" rules, so every rule that matches refuses the call; when several match, the one
that answers for the refusal (the one counted, whose prompt the caller hears) is the most specific: the narrowest
scope first (number, then account, then install-wide: the number's own owner chose its prompt), then the closest
caller match (exact or anonymous before a prefix, a longer prefix before a shorter one), then the oldest rule (lowest
id). So adding a rule never lets a call through that was refused before.

How a caller's number is read (`caller_key`): `+380671112233` as is; digits without `+` (many carriers send E.164
without it) get one; `00` + digits (the international prefix of most countries) becomes `+` + digits. Anything
else (a national number like `0671112233`, a SIP login) matches no number rule; withheld callers match `anonymous`.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from vpbx.domain.errors import ValidationError
from vpbx.domain.numbers import E164_EXAMPLE, is_e164
from vpbx.domain.validation import shown

ANONYMOUS = "anonymous"
# what a caller ID says when the caller withholds it (compared lower-case; "" too)
WITHHELD = frozenset({"", ANONYMOUS, "unknown", "restricted", "private", "withheld", "unavailable"})
PREFIX_RE = re.compile(r"\A\+[1-9][0-9]{0,14}\Z")
MAX_DIGITS = 15                      # E.164: at most 15 digits
SCOPES = ("number", "account", "install")   # most specific first


@dataclass(frozen=True)
class BlockRule:
    """One rule of the blocklist. `caller`: +E.164, a +digits prefix (`prefix`) or ANONYMOUS; `number` / `account`:
    the scope (both None: install-wide); `prompt`: played to the refused caller before hanging up (None: refused
    before answer, 403)."""

    caller: str
    prefix: bool = False
    number: str | None = None
    account: str | None = None
    prompt: str | None = None
    comment: str = ""
    id: int = 0                      # given by the store (0: not stored yet)
    blocked_calls: int = 0           # calls it refused so far
    last_blocked_at: str | None = None

    @property
    def scope(self) -> str:
        return "number" if self.number is not None else "account" if self.account is not None else "install"

    @property
    def scope_label(self) -> str:
        """`number +380441234567`, `account acme` or `install` (for messages and listings)."""
        return f"number {self.number}" if self.number is not None else \
            f"account {self.account}" if self.account is not None else "install"

    @property
    def where(self) -> str:
        """`install-wide`, `for number +380441234567` or `for account acme` (for messages)."""
        return "install-wide" if self.scope == "install" else f"for {self.scope_label}"

    @property
    def caller_label(self) -> str:
        """`+380671112233`, `+7495*` (a prefix) or `anonymous`."""
        return f"{self.caller}*" if self.prefix else self.caller


def parse_caller(text: str, prefix: bool = False) -> str:
    """What `vpbx block add CALLER [--prefix]` names, as stored: `+E.164`, a `+digits` prefix, or `anonymous`
    (any case); ValidationError naming the value and the fix."""
    if not isinstance(text, str):
        raise ValidationError(f"caller {shown(text)} is not text; give an E.164 number like {E164_EXAMPLE}")
    if text.lower() == ANONYMOUS:
        if prefix:
            raise ValidationError("caller `anonymous` (withheld numbers) is not a prefix; drop --prefix")
        return ANONYMOUS
    if prefix:
        if PREFIX_RE.fullmatch(text) is None:
            raise ValidationError(f"caller prefix {shown(text)} is not + and 1-15 digits; give e.g. +7495 (every "
                                  f"caller whose number starts with it)")
        return text
    if not is_e164(text):
        hint = "; to block every caller starting with it, add --prefix" if PREFIX_RE.fullmatch(text) else \
            "; write it with + and the country code" if text.isascii() and text.isdigit() else ""
        raise ValidationError(f"caller {shown(text)} is not an E.164 number (+, country code, 7-15 digits in all); "
                              f"give e.g. {E164_EXAMPLE}, `anonymous` for withheld numbers{hint}")
    return text


def caller_key(caller: str) -> str | None:
    """A caller ID as rules match it: `+digits`, ANONYMOUS (withheld), or None (matches no rule: a national number
    or a name)."""
    text = caller.strip() if isinstance(caller, str) else ""
    if text.lower() in WITHHELD:
        return ANONYMOUS
    digits = text[1:] if text.startswith("+") else text[2:] if text.startswith("00") else text
    if not digits.isascii() or not digits.isdigit() or digits.startswith("0"):
        return None
    return f"+{digits}"


def candidates(key: str) -> list[str]:
    """Every rule caller that can match a caller of `key` (from caller_key): the key itself and each of its
    prefixes of 1-15 digits. A store looks these up in its index; `decide` still makes the decision."""
    if key == ANONYMOUS:
        return [ANONYMOUS]
    out = [key[:i] for i in range(2, min(len(key), MAX_DIGITS + 1) + 1)]
    return out if key in out else [*out, key]


def in_scope(rule: BlockRule, number: str, account: str | None) -> bool:
    """`rule` covers calls to `number`, held by `account` (None: the install's own number)."""
    if rule.number is not None:
        return rule.number == number
    if rule.account is not None:
        return account is not None and rule.account == account
    return True


def matches(rule: BlockRule, key: str) -> bool:
    """`rule`'s caller matches a caller of `key` (from caller_key)."""
    if rule.prefix:
        return key != ANONYMOUS and key.startswith(rule.caller)
    return key == rule.caller


def _rank(rule: BlockRule) -> tuple[int, int, int, int]:
    return SCOPES.index(rule.scope), int(rule.prefix), -len(rule.caller), rule.id


def decide(rules: Iterable[BlockRule], caller: str, number: str, account: str | None) -> BlockRule | None:
    """The rule that refuses `caller` calling `number` (held by `account`; None: the install's own), or None when
    the call may go on. Any matching rule refuses; the most specific one answers for it (see the module doc)."""
    key = caller_key(caller)
    if key is None:
        return None
    return min((r for r in rules if in_scope(r, number, account) and matches(r, key)), key=_rank, default=None)
