"""vpbx.engine: the call engine behind the ARI edge (vpbx.ari_app wires it).

Rule: no decision of its own and no blocking I/O on the event loop. Every call decision is the pure model's
(vpbx.dialplan: the call flow, ringing, rejects, the outbound decision); the engine translates ARI events into model
events, carries out the model's actions over ARI, and keeps each call's bookkeeping. Storage runs on the StoreWorker's
threads (reads awaited, writes queued), never on the loop.

    core.py          Engine: the ARI event stream in, events routed to the call owning their channel
    events.py        ARI event -> model events (and what a new call's StasisStart says)
    calls.py         Call and the call registry; the per-call task (resolve, start/adopt, step, clean up, record)
    actions.py       model actions -> ARI requests: a dispatch table {action type: handler}
    recovery.py      reconcile after every (re)connect: adopt or hang up what the app holds, close stale records
    store_worker.py  StoreWorker: every storage call off the loop
    outbox_sender.py OutboxSender: the e-mail outbox (voicemail and notices), its own thread and connection
"""
from __future__ import annotations

from vpbx.engine.core import Engine
from vpbx.engine.store_worker import StoreWorker

__all__ = ["Engine", "StoreWorker"]
