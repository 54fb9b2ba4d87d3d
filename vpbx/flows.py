"""Loading a number's call flow from the store: the one place that gathers what `compile_flow` needs.

Rule: read-only; both the CLI (dry runs, checks) and the engine (every call) load flows through here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vpbx.dialplan import Flow
    from vpbx.store import Store


def extension_map(store: "Store") -> dict[str, str]:
    """Extensions a caller may type in an `--extensions` IVR: every all-digit SIP login rings that account."""
    return {a.login: f"sip:{a.login}" for a in store.list_sip_accounts() if a.login.isdigit()}


def load_flow(store: "Store", number: Any) -> "Flow":
    """Compile `number`'s flow with the groups, IVRs and accounts now in the store (ValidationError if broken)."""
    from vpbx.dialplan import compile_flow

    return compile_flow(number, {g.name: g for g in store.list_groups()}, {i.name: i for i in store.list_ivrs()},
                        {a.login for a in store.list_sip_accounts()}, extension_map(store))
