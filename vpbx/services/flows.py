"""Loading a number's call flow from the store: the one place that gathers what `compile_flow` needs.

Rule: read-only; both the CLI (dry runs, checks) and the engine (every call) load flows through here.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from vpbx.dialplan import compile_flow
from vpbx.domain.destinations import Destination, try_parse
from vpbx.domain.records import Group, Ivr, Number

if TYPE_CHECKING:
    from vpbx.dialplan import Flow
    from vpbx.storage.store import Store


def extension_map(store: Store) -> dict[str, str]:
    """Extensions a caller may type in an `--extensions` IVR: every all-digit SIP login rings that account, and an
    account's organisation ID goes where the account's first active number goes (its route or first forward
    target; IVR routes are left out so a shared IVR cannot loop into itself)."""
    out = {a.login: str(Destination("sip", a.login)) for a in store.sip_accounts.all() if a.login.isdigit()}
    for account in store.accounts.all():
        if account.org_id is None or str(account.org_id) in out:
            continue
        for n in store.numbers.held_by(account.name, ("active",)):
            dest = try_parse(n.route or (n.forward_to[0] if n.forward_to else None))
            if dest is not None and dest.kind != "ivr":
                out[str(account.org_id)] = str(dest)
                break
    return out


def load_flow(store: Store, number: Number, now: datetime | None = None) -> Flow:
    """Compile `number`'s flow with the groups, IVRs and accounts now in the store (ValidationError if broken).
    A number that may not serve calls now (suspended, awaiting documents, released, an ended trial) gets the
    "number unavailable" flow instead of its routing."""
    from vpbx.services.lifecycle import calls_allowed

    allowed, _reason = calls_allowed(number, now or datetime.now(UTC))
    if not allowed:
        number = replace(number, route=None, forward_to=(), greeting=None)

    return compile_flow(number, *flow_inputs(store))


def flow_inputs(store: Store, groups: Sequence[Group] = (), ivrs: Sequence[Ivr] = ()
                ) -> tuple[dict[str, Group], dict[str, Ivr], set[str], dict[str, str]]:
    """What `compile_flow` needs besides the number: groups and IVRs by name (`groups`/`ivrs` replace stored ones of
    the same name, to check a change before it is written), SIP logins, and the extension map - read only when an
    IVR lets callers type extensions, since it reads every account."""
    all_groups = {g.name: g for g in store.groups.all()}
    all_groups.update({g.name: g for g in groups})
    all_ivrs = {i.name: i for i in store.ivrs.all()}
    all_ivrs.update({i.name: i for i in ivrs})
    logins = {a.login for a in store.sip_accounts.all()}
    extensions = extension_map(store) if any(i.extensions for i in all_ivrs.values()) else {}
    return all_groups, all_ivrs, logins, extensions
