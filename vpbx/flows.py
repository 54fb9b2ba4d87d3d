"""Loading a number's call flow from the store: the one place that gathers what `compile_flow` needs.

Rule: read-only; both the CLI (dry runs, checks) and the engine (every call) load flows through here.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vpbx.dialplan import Flow
    from vpbx.store import Store


def extension_map(store: "Store") -> dict[str, str]:
    """Extensions a caller may type in an `--extensions` IVR: every all-digit SIP login rings that account, and an
    account's organisation ID goes where the account's first active number goes (its route or first forward
    target; IVR routes are left out so a shared IVR cannot loop into itself)."""
    out = {a.login: f"sip:{a.login}" for a in store.list_sip_accounts() if a.login.isdigit()}
    for account in store.list_accounts():
        if account.org_id is None or str(account.org_id) in out:
            continue
        for n in store.account_numbers(account.name, ("active",)):
            dest = n.route or (n.forward_to[0] if n.forward_to else None)
            if dest and not dest.startswith("ivr:"):
                out[str(account.org_id)] = dest
                break
    return out


def load_flow(store: "Store", number: Any, now: datetime | None = None) -> "Flow":
    """Compile `number`'s flow with the groups, IVRs and accounts now in the store (ValidationError if broken).
    A number that may not serve calls now (suspended, awaiting documents, released, an ended trial) gets the
    "number unavailable" flow instead of its routing."""
    from vpbx.dialplan import compile_flow
    from vpbx.lifecycle import calls_allowed

    allowed, _reason = calls_allowed(number, now or datetime.now(timezone.utc))
    if not allowed:
        number = replace(number, route=None, forward_to=(), greeting=None)

    ivrs = {i.name: i for i in store.list_ivrs()}
    accounts = store.list_sip_accounts()
    # the extension map reads every account: only worth it when some IVR lets callers type extensions
    extensions = extension_map(store) if any(i.extensions for i in ivrs.values()) else {}
    return compile_flow(number, {g.name: g for g in store.list_groups()}, ivrs, {a.login for a in accounts}, extensions)
