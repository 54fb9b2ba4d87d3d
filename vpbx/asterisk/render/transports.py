"""SIP transports and the RTP port range, from vpbx.toml [sip] (pure: settings in, config text out; no I/O).

Transports (written at the top of pjsip_vpbx.conf; nothing network-specific is in the shipped asterisk-conf/):

    transport-udp  udp  [sip] bind:port       phones, UDP trunks, the endpoint vpbx-external
    transport-tcp  tcp  [sip] bind:port       phones with `--transport tcp`, TCP trunks
    transport-tls  tls  [sip] bind:tls_port   with tls_cert + tls_key: phones with `--transport tls`, TLS trunks;
                                              without them only when a trunk uses tls (client side only)

A kind the Asterisk config already has (`reuse`: the admin's transport of that protocol on that port, or one with
that name - see vpbx.asterisk.system.reused_transports) is not rendered: two transports cannot share a port.

NAT: with `external_address` every transport gets `external_signaling_address` and `external_media_address`.
Asterisk then writes the external address into Contact/Via for a peer outside `local_net`, and into the SDP when its
own address (the one in the SDP) is inside `local_net` - so local_net must hold the server's private network as well
as the LAN's phones. Without a local_net it is the RFC 1918 networks (a server behind NAT has such an address);
127.0.0.0/8 is always added. Per endpoint (vpbx.asterisk.render.pjsip): rtp_symmetric, force_rport, rewrite_contact,
direct_media = no, and a qualify that keeps a phone's NAT binding open.

Asterisk creates a transport that is new on `module reload res_pjsip.so`, but does not change one that exists
(`allow_reload = no`, the default: re-binding would cut the calls on it) - `transport_changes` tells `vpbx reload`
when a restart is needed. rtp_vpbx.conf (the port range) is applied by `module reload res_rtp_asterisk.so`.
"""
from __future__ import annotations

from collections.abc import Collection, Sequence

from vpbx.asterisk.render.pjsip import HEADER, parse_sections, transport_name
from vpbx.config import Config, check_sip

KINDS = ("udp", "tcp", "tls")
LOOPBACK_NET = "127.0.0.0/8"
PRIVATE_NETS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")     # RFC 1918: local_net when none is given
TLS_METHOD = "tlsv1_2"


def _hostport(host: str, port: int) -> str:
    return f"{host}:{port}"


def _section(name: str, options: Sequence[tuple[str, str]], comment: str) -> str:
    return "\n".join([f"; {comment}", f"[{name}]", *(f"{k} = {v}" for k, v in options)]) + "\n"


def _nat(cfg: Config) -> list[tuple[str, str]]:
    sip = cfg.sip
    if not sip.external_address:
        return []
    nets = [LOOPBACK_NET, *(n for n in (sip.local_net or PRIVATE_NETS) if n != LOOPBACK_NET)]
    return [("external_signaling_address", sip.external_address),
            ("external_media_address", sip.external_address),
            *(("local_net", n) for n in nets)]


def render_transports(cfg: Config, tls_client: bool = False, reuse: Collection[str] = (),
                      tls_files: tuple[str, str] | None = None) -> list[str]:
    """The transport sections vpbx provides. `tls_client`: a trunk uses tls (a TLS transport is needed even without
    a certificate); `reuse`: kinds the Asterisk config already has; `tls_files`: (cert, key) as Asterisk sees them
    (default: [sip] tls_cert / tls_key as written)."""
    check_sip(cfg)
    sip = cfg.sip
    nat = _nat(cfg)
    where = cfg.sip_bind
    out: list[str] = []
    for kind in ("udp", "tcp"):
        if kind in reuse:
            continue
        options = [("type", "transport"), ("protocol", kind), ("bind", _hostport(where, cfg.sip_port))]
        if kind == "udp":
            options += [("tos", "cs3"), ("cos", "3")]
        out.append(_section(transport_name(kind), options + nat,
                            f"{kind.upper()} transport ([sip] bind, port{', external_address' if nat else ''})"))
    has_cert = bool(sip.tls_cert and sip.tls_key)
    if "tls" not in reuse and (has_cert or tls_client):
        options = [("type", "transport"), ("protocol", "tls"), ("bind", _hostport(where, sip.tls_port)),
                   ("method", TLS_METHOD)]
        if has_cert:
            cert, key = tls_files or (sip.tls_cert, sip.tls_key)
            options += [("cert_file", cert), ("priv_key_file", key), ("require_client_cert", "no")]
            comment = "TLS transport ([sip] tls_port, tls_cert, tls_key): phones and TLS trunks"
        else:
            comment = "TLS transport (a trunk uses tls; client side only: no [sip] tls_cert / tls_key)"
        # as a client (TLS trunks) the carrier's certificate is checked against the system CAs
        options += [("verify_server", "yes"), *nat]
        out.append(_section(transport_name("tls"), options, comment))
    return out


def render_rtp(cfg: Config) -> str:
    """rtp_vpbx.conf: the RTP port range, added to rtp.conf's [general] (`(+)`: rtp.conf includes this file
    after its own [general]; the last value of a key wins)."""
    check_sip(cfg)
    return (HEADER + "; the RTP port range from vpbx.toml [sip] rtp_start / rtp_end; open it (udp) in the firewall\n"
            f"[general](+)\nrtpstart = {cfg.sip.rtp_start}\nrtpend = {cfg.sip.rtp_end}\n")


def transport_sections(text: str | None) -> dict[str, tuple[tuple[str, str], ...]]:
    """name -> options of every `type = transport` section of a pjsip config text (None: no file)."""
    if not text:
        return {}
    try:
        sections = parse_sections(text)
    except ValueError:
        return {}
    return {s.name: s.options for s in sections if s.get("type") == "transport"}


def transport_changes(old: str | None, new: str) -> list[str]:
    """The transports that exist in `old` and are changed or gone in `new` (Asterisk only applies those on a
    restart); a transport that is only added is created by the reload."""
    before, after = transport_sections(old), transport_sections(new)
    return sorted(name for name, options in before.items() if after.get(name) != options)
