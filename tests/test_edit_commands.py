"""Issue 13, items 2, 4 and 5: edit commands, voicemail recipients and prompt references, through the CLI.

2. `trunk set`, `sip set`, `group set`, `ivr set` change a stored object; the changed object is judged by the same rule
   as a new one (for a trunk: `vpbx.domain.rules.check_trunk`, the renderer's check), so no edit can store a value
   `config generate` refuses. Passwords may come from `--password-file FILE` or `-` (stdin), not only the command line.
4. A number whose calls can reach voicemail (route, fallback, an IVR option, through nested IVRs) needs a recipient;
   every `vpbx ...` command an error message (any string in vpbx/) names exists, with its options.
5. Every prompt a change names (IVR prompt and invalid prompt, `play:PROMPT` anywhere, a greeting) must be installed;
   `prompt remove` is refused while something plays the prompt.

Every refusal: exit 1, one `Error:` line naming the object and the fix, the database unchanged.
"""
from __future__ import annotations

import ast
import json
import math
import re
import struct
import wave
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from clitools import dump, ok
from vpbx.cli import main
from vpbx.domain import rules
from vpbx.domain.errors import ValidationError
from vpbx.domain.records import Trunk
from vpbx.storage.store import Store

CLEAN_ENV = {"VPBX_CONFIG": None, "VPBX_DB": None, "COLUMNS": "250"}
VPBX_SRC = Path(__file__).resolve().parent.parent / "vpbx"
KYIV = "+380441234567"
KYIV2 = "+380442718459"


def tone_wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000)))
                               for i in range(800)))
    return path


class Site:
    """An install made by `vpbx init` in a temp dir (its own sounds dir), with a trunk, two phones, a number, a prompt
    `hello` and a ring group."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.cfg = tmp / "vpbx.toml"
        self.db = tmp / "vpbx.db"
        self.sounds = tmp / "sounds"
        self.tone = tone_wav(tmp / "tone.wav")

    def __call__(self, *args: object, stdin: str | bytes | None = None) -> Result:
        return CliRunner().invoke(main, ["--config", str(self.cfg), *map(str, args)], env=CLEAN_ENV, input=stdin)

    def must(self, *args: object, stdin: str | None = None) -> Result:
        return ok(self(*args, stdin=stdin))

    def json(self, *args: object) -> object:
        return json.loads(self.must(*args, "--json").stdout)

    def fails(self, *args: object, needles: tuple[str, ...] = (), stdin: str | bytes | None = None) -> str:
        before = dump(self.db)
        result = self(*args, stdin=stdin)
        assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr, result.exception)
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
        for needle in needles:
            assert needle in lines[0], (needle, lines[0])
        assert dump(self.db) == before, "a refused command changed the database"
        return lines[0]

    def usage(self, *args: object) -> None:
        before = dump(self.db)
        result = self(*args)
        assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
        assert dump(self.db) == before


@pytest.fixture
def site(tmp_path: Path) -> Site:
    s = Site(tmp_path)
    ok(CliRunner().invoke(main, ["--config", str(s.cfg), "init", "--dir", str(tmp_path), "--asterisk-config-dir",
                                 str(tmp_path / "etc"), "--sounds-dir", str(s.sounds)], env=CLEAN_ENV))
    s.must("trunk", "add", "t1", "--server", "sip.example.net", "--login", "l1", "--password", "secretpass1")
    s.must("sip", "add", "alice", "--password", "secretpass1")
    s.must("sip", "add", "bob", "--password", "secretpass1")
    s.must("number", "add", KYIV, "--trunk", "t1")
    s.must("number", "add", KYIV2, "--trunk", "t1")
    s.must("prompt", "add", "hello", s.tone)
    s.must("group", "add", "sales", "--member", "sip:alice")
    return s


def stored_trunk(site: Site, name: str = "t1") -> Trunk:
    with Store.open(site.db) as store:
        return store.trunks.get(name)


def generates(site: Site) -> None:
    ok(site("config", "generate", "--out", site.tmp / "out"))


# ---- item 2: trunk set, and one trunk rule at write and render time -------------------------------------------------
def test_trunk_set_changes_the_given_fields_and_keeps_the_rest(site: Site) -> None:
    shown = site.json("trunk", "set", "t1", "--server", "sip2.example.net", "--port", "5080", "--transport", "tcp",
                      "--no-register", "--login", "l2")
    assert "password" not in json.dumps(shown)
    t = stored_trunk(site)
    assert (t.server, t.port, t.transport, t.register, t.login, t.password) == \
        ("sip2.example.net", 5080, "tcp", False, "l2", "secretpass1")
    generates(site)


BAD_PASSWORDS = ["", " lead", "trail ", "a\u2028b", "a\x85b", "a\x7fb", "a\nb", "a;b\n[x]"]


@pytest.mark.parametrize("password", BAD_PASSWORDS)
def test_trunk_set_and_add_refuse_every_password_the_renderer_refuses(site: Site, password: str) -> None:
    with pytest.raises(ValidationError) as render:
        rules.check_trunk(Trunk(name="t1", server="sip.example.net", login="l1", password=password))
    line = site.fails("trunk", "set", "t1", "--password", password, needles=("trunk t1",))
    assert line == f"Error: {render.value}"          # the very rule the renderer applies
    site.fails("trunk", "add", "t9", "--server", "s.example.net", "--login", "l", "--password", password,
               needles=("trunk t9",))
    generates(site)


@pytest.mark.parametrize("args, needle", [
    (("--port", "0"), "port 0 is out of range"),
    (("--port", "70000"), "port 70000 is out of range"),
    (("--server", "bad host;x"), "trunk t1"),
    (("--login", "a b"), "trunk t1"),
])
def test_trunk_set_refuses_other_bad_fields(site: Site, args: tuple[str, ...], needle: str) -> None:
    site.fails("trunk", "set", "t1", *args, needles=(needle,))


def test_trunk_set_needs_a_change_and_an_existing_trunk(site: Site) -> None:
    site.fails("trunk", "set", "t1", needles=("trunk t1: nothing to change", "--server"))
    site.fails("trunk", "set", "nosuch", "--port", "5061", needles=("trunk nosuch", "vpbx trunk list"))


# ---- item 2: passwords from a file or stdin ----------------------------------------------------------------------
def test_passwords_come_from_a_file_without_its_line_end(site: Site) -> None:
    f = site.tmp / "pw"
    f.write_text("fromfile-secret-1\n")
    site.must("trunk", "set", "t1", "--password-file", f)
    assert stored_trunk(site).password == "fromfile-secret-1"
    f.write_bytes(b"crlf-secret-22\r\n")
    site.must("trunk", "add", "t2", "--server", "s2.example.net", "--login", "l2", "--password-file", f)
    assert stored_trunk(site, "t2").password == "crlf-secret-22"
    site.must("sip", "set", "alice", "--password-file", f)
    site.must("sip", "add", "carol", "--password-file", f)
    with Store.open(site.db) as store:
        assert store.sip_accounts.get("alice").password == "crlf-secret-22"
        assert store.sip_accounts.get("carol").password == "crlf-secret-22"
    generates(site)


def test_passwords_come_from_stdin(site: Site) -> None:
    site.must("trunk", "set", "t1", "--password-file", "-", stdin="stdin-secret-1\n")
    assert stored_trunk(site).password == "stdin-secret-1"
    site.must("sip", "set", "bob", "--password-file", "-", stdin="stdin-secret-2")
    with Store.open(site.db) as store:
        assert store.sip_accounts.get("bob").password == "stdin-secret-2"


def test_sip_set_takes_a_chosen_password_checked_like_sip_add(site: Site) -> None:
    site.must("sip", "set", "alice", "--password", "chosen-secret-9")
    with Store.open(site.db) as store:
        assert store.sip_accounts.get("alice").password == "chosen-secret-9"
    site.fails("sip", "set", "alice", "--password", "x\ny", needles=("SIP account alice",))
    site.fails("sip", "set", "alice", "--channels", "1001", needles=("SIP account alice", "channels must be 1-1000"))
    site.fails("sip", "add", "dave", "--channels", "1001", needles=("SIP account dave",))


def test_a_bad_password_file_is_refused_by_name(site: Site) -> None:
    f = site.tmp / "pw"
    f.write_text("trailing-space \n")
    site.fails("trunk", "set", "t1", "--password-file", f, needles=("trunk t1", "password"))
    f.write_bytes(b"\xff\xfe latin")
    site.fails("trunk", "set", "t1", "--password-file", f, needles=("password file", "not UTF-8"))
    f.write_text("x" * 5000)
    site.fails("sip", "set", "alice", "--password-file", f, needles=("password file", "4096 bytes"))
    site.fails("trunk", "set", "t1", "--password-file", site.tmp / "missing", needles=("password file",
                                                                                        "cannot be read"))
    site.fails("trunk", "set", "t1", "--password-file", site.tmp, needles=("password file", "not a regular file"))
    site.fails("trunk", "set", "t1", "--password-file", "-", stdin="two\nlines\n", needles=("trunk t1",))


def test_password_and_password_file_together_is_a_usage_error(site: Site) -> None:
    f = site.tmp / "pw"
    f.write_text("fromfile-secret-1\n")
    site.usage("trunk", "set", "t1", "--password", "abcdefgh12", "--password-file", f)
    site.usage("sip", "set", "alice", "--password", "abcdefgh12", "--password-file", f)
    site.usage("trunk", "add", "t5", "--server", "s.example.net", "--login", "l")   # neither


# ---- item 2: group set ---------------------------------------------------------------------------------------------
def test_group_set_replaces_members_and_changes_strategy_and_timeout(site: Site) -> None:
    g = site.json("group", "set", "sales", "--member", "sip:bob", "--member", "tel:+74951112233", "--strategy",
                  "sequential", "--timeout", "15")
    assert g == {"name": "sales", "members": ["sip:bob", "tel:+74951112233"], "strategy": "sequential", "timeout": 15}
    g = site.json("group", "set", "sales", "--timeout", "30")
    assert g["members"] == ["sip:bob", "tel:+74951112233"] and g["timeout"] == 30


def test_group_set_judges_the_changed_group_like_a_new_one(site: Site) -> None:
    site.fails("group", "set", "sales", "--member", "sip:nosuch", needles=("nosuch",))
    site.fails("group", "set", "sales", "--member", "voicemail", needles=("group sales", "member"))
    site.fails("group", "set", "sales", needles=("group sales: nothing to change",))
    site.fails("group", "set", "nosuch", "--timeout", "5", needles=("group nosuch", "vpbx group list"))


# ---- item 2: ivr set -----------------------------------------------------------------------------------------------
def test_ivr_set_adds_replaces_and_removes_options(site: Site) -> None:
    site.must("ivr", "add", "menu", "--prompt", "hello", "--option", "1=sip:alice", "--option", "2=group:sales")
    m = site.json("ivr", "set", "menu", "--option", "1=sip:bob", "--option", "3=hangup", "--remove-option", "2",
                  "--timeout", "9", "--retries", "2", "--invalid-prompt", "hello", "--extensions")
    assert m["options"] == [["1", "sip:bob"], ["3", "hangup"]]
    assert (m["timeout"], m["retries"], m["invalid_prompt"], m["extensions"]) == (9, 2, "hello", True)
    m = site.json("ivr", "set", "menu", "--invalid-prompt", "", "--no-extensions", "--prompt", "goodbye")
    assert (m["invalid_prompt"], m["extensions"], m["prompt"]) == (None, False, "goodbye")


def test_ivr_set_refuses_what_ivr_add_refuses(site: Site) -> None:
    site.must("ivr", "add", "menu", "--prompt", "hello", "--option", "1=sip:alice")
    site.fails("ivr", "set", "menu", "--remove-option", "1", needles=("IVR menu", "--option KEY=DEST"))
    site.fails("ivr", "set", "menu", "--remove-option", "7", needles=("IVR menu", "no option for key 7"))
    site.fails("ivr", "set", "menu", "--remove-option", "1", "--option", "1=hangup", needles=("both removed",))
    site.fails("ivr", "set", "menu", "--option", "2=ivr:nosuch", needles=("nosuch",))
    site.fails("ivr", "set", "menu", "--option", "x=hangup", needles=("IVR menu", "KEY=DEST"))
    site.fails("ivr", "set", "menu", needles=("IVR menu: nothing to change",))
    site.fails("ivr", "set", "nosuch", "--timeout", "5", needles=("IVR nosuch", "vpbx ivr list"))


# ---- item 4: voicemail needs a recipient ---------------------------------------------------------------------------
def test_a_route_to_voicemail_needs_a_recipient(site: Site) -> None:
    site.fails("number", "route", KYIV, "voicemail", needles=(f"number {KYIV}", "--vm-email"))
    site.must("number", "route", KYIV, "voicemail", "--vm-email", "office@example.com")
    site.must("number", "route", KYIV, "sip:alice", "--fallback", "voicemail")   # the recipient stays
    site.fails("number", "forward", KYIV2, "--to", "sip:alice", "--mode", "simultaneous", "--fallback", "voicemail",
               needles=(f"number {KYIV2}", "--vm-email"))


def test_an_ivr_voicemail_option_needs_the_recipients_of_every_number_reaching_it(site: Site) -> None:
    site.must("ivr", "add", "menu", "--prompt", "hello", "--option", "1=voicemail")    # nothing reaches it yet
    site.fails("number", "route", KYIV, "ivr:menu", needles=(f"number {KYIV}", "--vm-email"))
    site.must("number", "route", KYIV, "ivr:menu", "--vm-email", "office@example.com")
    # a change to an IVR is judged with the numbers that reach it, also through another IVR and an hours: branch
    site.must("ivr", "add", "front", "--prompt", "hello", "--option", "1=hangup")
    site.must("schedule", "add", "office", "--tz", "UTC", "--open", "mon-fri", "09:00-18:00")
    site.must("number", "route", KYIV2, "hours:office?open=ivr:front&closed=hangup")
    site.fails("ivr", "set", "front", "--option", "2=voicemail", needles=(f"number {KYIV2}", "--vm-email"))
    site.must("ivr", "set", "front", "--option", "2=hangup")
    site.must("ivr", "add", "deep", "--prompt", "hello", "--option", "1=hangup")
    site.must("ivr", "set", "front", "--option", "3=ivr:deep")
    site.fails("ivr", "set", "deep", "--option", "2=voicemail", needles=(f"number {KYIV2}", "--vm-email"))


# ---- item 4: every command an error message names exists -------------------------------------------------------------
def _strings(tree: ast.AST) -> Iterator[str]:
    """Every string in a module, f-strings with `{...}` for their fields (adjacent literals are already one)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value
        elif isinstance(node, ast.JoinedStr):
            yield "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)


def named_commands() -> list[tuple[str, str]]:
    """(file, text after `vpbx `) for every `vpbx ...` in backticks in a string of the vpbx package."""
    found = []
    for path in sorted(VPBX_SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for text in _strings(tree):
            for m in re.finditer(r"`vpbx ([^`]*)`", text):
                found.append((str(path.relative_to(VPBX_SRC.parent)), m.group(1)))
    return found


def _problems(cmd: click.Command, words: list[str], path: str) -> list[str]:
    """What in `words` (after command path `path`) names no subcommand or option of `cmd`."""
    ctx = click.Context(cmd)
    while words and isinstance(cmd, click.Group) and words[0].startswith("-"):    # the group's own options
        param = next((p for p in cmd.params if words[0] in p.opts), None)
        if words[0] == "--help":
            return []
        if param is None:
            return [f"`{path}` has no option {words[0]}"]
        words = words[1 if getattr(param, "is_flag", False) else 2:]
    if words and isinstance(cmd, click.Group):
        word, rest = words[0], words[1:]
        if word == "...":
            return []
        problems = []
        for name in re.split(r"[|/]", word):
            sub = cmd.get_command(ctx, name)
            if sub is None:
                problems.append(f"`{path} {name}` is no command")
            else:
                problems += _problems(sub, rest, f"{path} {name}")
        return problems
    if isinstance(cmd, click.Group) and not words:
        return []
    options = {"--help"} | {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    problems = []
    for word in words:
        if word == "--":
            break
        option = word.strip("[]").split("=")[0]
        if option.startswith("--") and option not in options:
            problems.append(f"`{path}` has no option {option}")
    return problems


def test_every_vpbx_command_named_in_a_message_exists() -> None:
    named = named_commands()
    assert len(named) > 50, "the scan found too few `vpbx ...` strings: is the pattern still right?"
    problems = [f"{where}: `vpbx {text}`: {p}" for where, text in named
                for p in _problems(main, text.split(), "vpbx")]
    assert problems == []


def test_the_scan_catches_a_command_or_option_that_does_not_exist() -> None:
    assert _problems(main, ["number", "set", "N", "--vm-email", "ADDRESS"], "vpbx") == \
        ["`vpbx number set` has no option --vm-email"]
    assert _problems(main, ["number", "frobnicate"], "vpbx") == ["`vpbx number frobnicate` is no command"]
    assert _problems(main, ["number|sip", "set", "...", "--record"], "vpbx") == []
    assert _problems(main, ["--config", "F", "init", "--dir", "D"], "vpbx") == []
    assert _problems(main, ["--frob", "number", "list"], "vpbx") == ["`vpbx` has no option --frob"]


# ---- item 5: prompt references -------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ("ivr", "add", "m", "--prompt", "nosuch", "--option", "1=hangup"),
    ("ivr", "add", "m", "--prompt", "hello", "--option", "1=hangup", "--invalid-prompt", "nosuch"),
    ("ivr", "add", "m", "--prompt", "hello", "--option", "1=play:nosuch"),
    ("ivr", "add", "m", "--prompt", "hello", "--option", "1=hours:office?open=hangup&closed=play:nosuch"),
    ("number", "route", KYIV, "play:nosuch"),
    ("number", "route", KYIV, "sip:alice", "--greeting", "nosuch"),
    ("number", "route", KYIV, "sip:alice", "--fallback", "play:nosuch"),
    ("number", "route", KYIV, "hours:office?open=sip:alice&closed=play:nosuch"),
    ("number", "forward", KYIV, "--to", "sip:alice", "--mode", "sequential", "--greeting", "nosuch"),
])
def test_a_prompt_that_is_not_installed_is_refused(site: Site, args: tuple[str, ...]) -> None:
    site.must("schedule", "add", "office", "--tz", "UTC", "--open", "mon-fri", "09:00-18:00")
    site.fails(*args, needles=("prompt nosuch is not installed", "vpbx prompt add nosuch FILE"))


def test_installed_and_built_in_prompts_are_accepted(site: Site) -> None:
    site.must("ivr", "add", "m", "--prompt", "hello", "--option", "1=play:goodbye", "--invalid-prompt",
              "invalid-option")
    site.must("number", "route", KYIV, "play:hello", "--greeting", "hello")
    site.fails("ivr", "set", "m", "--prompt", "nosuch", needles=("IVR m", "prompt nosuch is not installed"))
    site.fails("ivr", "set", "m", "--option", "2=play:nosuch", needles=("IVR m", "prompt nosuch"))


@pytest.mark.parametrize("use", [
    ("ivr", "add", "m", "--prompt", "hi2", "--option", "1=hangup"),
    ("ivr", "add", "m", "--prompt", "hello", "--option", "1=hangup", "--invalid-prompt", "hi2"),
    ("ivr", "add", "m", "--prompt", "hello", "--option", "1=play:hi2"),
    ("number", "route", KYIV, "play:hi2"),
    ("number", "route", KYIV, "sip:alice", "--greeting", "hi2"),
    ("number", "route", KYIV, "sip:alice", "--fallback", "play:hi2"),
    ("sip", "set", "alice", "--record", "--record-prompt", "hi2"),
])
def test_prompt_remove_is_refused_while_the_prompt_is_used(site: Site, use: tuple[str, ...]) -> None:
    site.must("prompt", "add", "hi2", site.tone)
    site.must(*use)
    site.fails("prompt", "remove", "hi2", needles=("prompt hi2 is still used by", "change those first"))
    assert (site.sounds / "en" / "vpbx" / "hi2.wav").is_file()


def test_prompt_remove_of_an_unused_prompt_or_one_language_of_several(site: Site) -> None:
    site.must("prompt", "add", "hi2", site.tone)
    site.must("prompt", "add", "hi2", site.tone, "--language", "ru")
    site.must("number", "route", KYIV, "play:hi2")
    site.must("prompt", "remove", "hi2", "--language", "ru")        # en is left: calls still hear it
    site.fails("prompt", "remove", "hi2", "--language", "en", needles=(f"number {KYIV}",))
    site.must("number", "route", KYIV, "hangup")
    site.must("prompt", "remove", "hi2")
    assert not (site.sounds / "en" / "vpbx" / "hi2.wav").exists()
