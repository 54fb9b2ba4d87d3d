"""vpbx.commands: the command line's groups, one module per group, loaded lazily by `vpbx.cli` (its COMMANDS table).

Layer rule (tests/test_layers.py; lowest first: domain; dialplan, billing; config; storage; services; asterisk;
engine; ari_app; commands; cli): a command module imports only lower layers and `vpbx.commands.output`, never
`vpbx.cli` (the root group imports the commands, lazily, not the other way round).

Rule: a thin shell. Parse options, call one service function (every change and every rule lives in `vpbx.services`;
plain reads may go straight to a store repository), print through `vpbx.commands.output` (`emit`: a table or one
JSON document). Heavy modules are imported inside the commands, so loading a group for `--help` stays fast.

    output.py     Ctx (config + store), pass_ctx, json_option, emit, option text -> values (dates, amounts, files)
    numbers.py    number: add, import, list, show, set, remove, route, forward, reserve, assign, trial, activate,
                  release
    sip.py        sip            trunks.py     trunk          groups.py     group          ivrs.py      ivr
    calls.py      call simulate, calls list / stats            prompts.py    prompt         voicemail.py voicemail
    config.py     init, config generate / check, reload        engine.py     serve
    accounts.py   account        tariffs.py    tariff         rates.py      rates          billing.py   billing run
    documents.py  document       waitlist.py   waitlist       notices.py    notices        stats.py     stats
    schedules.py  schedule (business hours)                    recordings.py recording (recorded calls)
"""
