"""Ring groups (departments): members rung all at once or one after another.

Rule: members are dialable destinations (sip:, tel:, uri:; `vpbx.domain.destinations.parse_target`), and a new
group is checked by compiling a flow routed to it before it is written.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from vpbx.domain import validation as validate
from vpbx.domain.errors import ValidationError
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


def update(store: Store, name: str, *, members: Sequence[str] | None = None, strategy: str | None = None,
           timeout: int | None = None) -> Group:
    """`vpbx group set`: change the given fields (None: keep; `members` replaces the list). The changed group is
    checked like a new one (members, strategy, timeout, and every flow through it compiles) before the one write."""
    validate.name(name, "group")
    obj = f"group {name}"
    if members is None and strategy is None and timeout is None:
        raise ValidationError(f"{obj}: nothing to change; give --member (repeatable; replaces the members), "
                              f"--strategy or --timeout")
    with store.write():
        old = store.groups.get(name)
        record = replace(old, members=old.members if members is None else tuple(members),
                         strategy=old.strategy if strategy is None else strategy,
                         timeout=old.timeout if timeout is None else timeout)
        checked = ring_targets(obj, record.members, record.strategy, record.timeout,
                               missing="give at least one --member", target="member", mode_word="strategy",
                               timeout_word="timeout")
        record = replace(record, members=checked)
        check_flows(store, groups=[record])
        return store.groups.update(record)


def remove(store: Store, name: str) -> None:
    """Remove a ring group (refused while a route uses it)."""
    store.groups.remove(name)
