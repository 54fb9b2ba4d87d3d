"""Call recording: whether a call is recorded, and with which announcement.

Rule: pure. Recording is asked for per number, per SIP account and per customer account (each record's
`record_calls`, with an optional `record_prompt`, the name of an uploaded prompt played to the caller before the call
is connected). A call is recorded when any of the three that concern it asks for it; the announcement is the prompt
of the first of them, in the order number, SIP account, account, that asks for recording and names a prompt (a prompt
kept on a record that does not record is kept for when it does, and never played).
"""
from __future__ import annotations

from vpbx.domain.records import Account, Number, SipAccount

__all__ = ["recording_for"]


def recording_for(number: Number | None, number_account: Account | None,
                  sip_account: SipAccount | None) -> tuple[bool, str | None]:
    """(record?, prompt name or None) for a call to or from `number`, whose holder is `number_account`, placed by or
    to `sip_account` (None: that party is not involved or not known). Not recorded -> (False, None)."""
    asking = [party for party in (number, sip_account, number_account) if party is not None and party.record_calls]
    if not asking:
        return False, None
    return True, next((party.record_prompt for party in asking if party.record_prompt), None)
