"""Third-party SIP trunks: a provider's line vpbx registers to, dials out through and takes calls from.

Rule: every field that reaches pjsip_vpbx.conf is checked by `vpbx.domain.rules.check_trunk`, the same check the
renderer makes; the password is kept plain (Asterisk answers the provider's challenge with it).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from vpbx.domain import rules
from vpbx.domain.records import Trunk

if TYPE_CHECKING:
    from vpbx.storage.store import Store


def add(store: Store, name: str, *, server: str, login: str, password: str, port: int = 5060,
        transport: str = "udp", register: bool = True, srtp: bool = False) -> Trunk:
    trunk = rules.check_trunk(Trunk(name=name, server=server, port=port, login=login, password=password,
                                    transport=transport, register=register, srtp=srtp))
    return store.trunks.add(trunk)


def remove(store: Store, name: str) -> None:
    """Remove a trunk (refused while numbers use it)."""
    store.trunks.remove(name)
