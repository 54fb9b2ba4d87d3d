"""vpbx.domain: the vocabulary every layer shares.

Rule: pure. Nothing here does I/O, speaks SQL, Click or asyncio, or imports another vpbx layer (only the standard
library and `phonenumbers`); every other package may import it.

    errors.py        the one exception hierarchy (VpbxError, ValidationError, DestinationError, NotFoundError...)
    records.py       frozen records: Number, SipAccount, Trunk, Group, Ivr, Account
    destinations.py  parse / format every destination string (sip:, group:, ivr:, tel:, uri:, play:, voicemail, hangup)
    numbers.py       the E.164 pattern, number type / city / operator lookup, the "beauty" category
    validation.py    full-match checks of every text that can reach a config file, dialplan, file name or e-mail;
                     the DTMF key set
    timestamps.py    the one ISO-8601 UTC format (utc_now_iso, to_iso, iso_from_epoch, from_iso)
    security.py      brute-force protection: the ban policy, failures, bans, the Tracker that decides
    blocklist.py     the caller blocklist: rules, how a caller ID is read, which rule refuses a call
    schedules.py     business hours: schedule texts (full match), zone offsets as data, "open at this instant?"
    recording.py     call recording: whether a call is recorded and which prompt announces it
"""
