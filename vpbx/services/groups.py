"""Ring groups (departments): members rung all at once or one after another.

Rule: members are dialable destinations (sip:, tel:, uri:; `vpbx.domain.destinations.parse_target`), and a new
group is checked by compiling a flow routed to it before it is written.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from vpbx.domain import validation as validate
from vpbx.domain.records import Group
from vpbx.services.routing import check_flows, ring_targets

if TYPE_CHECKING:
    from vpbx.storage.store import Store


def add(store: Store, name: str, members: Sequence[str], *, strategy: str = "simultaneous",
        timeout: int = 20) -> Group:
    """Add a ring group; `timeout` is seconds overall (simultaneous) or per member (sequential)."""
    validate.name(name, "group")
    obj = f"group {name}"
    checked = ring_targets(obj, members, strategy, timeout, missing="give at least one --member", target="member",
                           mode_word="strategy", timeout_word="timeout")
    record = Group(name=name, members=checked, strategy=strategy, timeout=timeout)
    with store.write():
        check_flows(store, groups=[record])
        return store.groups.add(record)


def remove(store: Store, name: str) -> None:
    """Remove a ring group (refused while a route uses it)."""
    store.groups.remove(name)
