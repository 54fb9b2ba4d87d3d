"""The caller blocklist: add, list and remove rules (`vpbx block ...`); the engine refuses the calls they name.

Rule: every input is checked before the one write, so a refused command changes nothing: the caller (an E.164
number, a `+digits` prefix with `prefix`, or `anonymous`: vpbx.domain.blocklist.parse_caller), one scope at most
(a number of this install, or an open customer account; neither: install-wide), the prompt's name, the comment. The
same caller in the same scope twice is refused (ConflictError naming the rule). Which rule refuses a call is
vpbx.domain.blocklist.decide's; the engine applies rules to the next call (no reload).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vpbx.domain import validation as validate
from vpbx.domain.blocklist import ANONYMOUS, BlockRule, parse_caller
from vpbx.domain.errors import ConflictError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from vpbx.storage.store import Store

COLUMNS = ("id", "caller", "prefix", "scope", "prompt", "blocked_calls", "last_blocked_at", "comment")


def as_row(rule: BlockRule) -> dict[str, Any]:
    """A rule as `vpbx block list` shows it (scope: `install`, `number +E164` or `account NAME`)."""
    return {"id": rule.id, "caller": rule.caller, "prefix": rule.prefix, "scope": rule.scope_label,
            "number": rule.number, "account": rule.account, "prompt": rule.prompt, "comment": rule.comment,
            "blocked_calls": rule.blocked_calls, "last_blocked_at": rule.last_blocked_at}


def add(store: Store, caller: str, *, number: str | None = None, account: str | None = None, prefix: bool = False,
        prompt: str | None = None, comment: str = "") -> BlockRule:
    """Block `caller` (an E.164 number; with `prefix` every number starting with it; `anonymous`: callers who
    withhold their number) on calls to `number`, to every number `account` holds, or (neither) to the install.
    `prompt`: played before hanging up, instead of refusing the call before answer."""
    if number is not None and account is not None:
        raise ValidationError("a block rule has one scope: give --number or --account (or neither: install-wide), "
                              "not both")
    rule = BlockRule(caller=parse_caller(caller, prefix), prefix=prefix, number=number, account=account,
                     prompt=None if prompt is None else validate.prompt_name(prompt),
                     comment=validate.printable_text("comment", comment, f"block rule for caller {caller}"))
    if number is not None:
        store.numbers.get(number)                 # NotFoundError: names the number and `vpbx number list`
    if account is not None:
        store.accounts.get(account)               # NotFoundError: unknown or closed
    return store.blocklist.add(rule)


def rules(store: Store, number: str | None = None) -> list[BlockRule]:
    """Every rule, oldest first; with `number`, the rules that cover calls to it (install-wide, its account's, its
    own)."""
    if number is None:
        return store.blocklist.all()
    held = store.numbers.get(number)
    return store.blocklist.for_number(held.number, held.account)


def remove(store: Store, targets: Sequence[str]) -> list[BlockRule]:
    """Remove rules named by ID or by caller (`+380671112233`, a prefix as written, `anonymous`), all or none: an
    unknown ID or caller, or a caller with rules in several scopes (give their IDs), removes nothing."""
    if not targets:
        raise ValidationError("give the ID or the caller of a rule to remove; `vpbx block list` shows them")
    with store.write():
        found: dict[int, BlockRule] = {}
        for target in targets:
            for rule in _named(store, target):
                found[rule.id] = rule
        store.blocklist.remove(list(found))
    return list(found.values())


def _named(store: Store, target: str) -> list[BlockRule]:
    if target.isascii() and target.isdigit():
        return [store.blocklist.get(int(target))]
    caller = ANONYMOUS if target.lower() == ANONYMOUS else target
    if caller != ANONYMOUS and not (caller.startswith("+") and caller[1:].isascii() and caller[1:].isdigit()):
        raise ValidationError(f"{validate.shown(target)} is neither a rule ID nor a caller (+E.164, a +digits prefix "
                              f"or `anonymous`); `vpbx block list` shows the rules")
    found = store.blocklist.with_caller(caller)
    if not found:
        raise NotFoundError(f"caller {caller} is not blocked; `vpbx block list` shows the rules")
    if len(found) > 1:
        ids = " ".join(str(r.id) for r in found)
        raise ConflictError(f"caller {caller} has {len(found)} block rules ("
                            + ", ".join(f"{r.id}: {r.caller_label} {r.where}" for r in found)
                            + f"); remove the one you mean by its ID, or all with `vpbx block remove {ids}`")
    return found
