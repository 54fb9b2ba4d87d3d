"""Test networks: hosts in network namespaces joined to this machine (where the Asterisk sandbox runs) by veth pairs,
and a router namespace that masquerades (nftables) for a host "behind NAT".

    with LabNet() as net:
        lan = net.lan_host()                 # a phone on the LAN: lan.address talks to lan.gateway (this machine)
        nat = net.nat_host()                 # a phone behind a NAT router: seen from here as nat.public
        Phone("p", 700, bind=lan.address, prefix=lan.run)

Rules: names carry this process's pid, so parallel or leftover runs never collide; traffic only ever goes between
addresses inside these namespaces and this machine's side of their veth links (10.77.x.0/24, 10.78.x.0/24,
192.168.77.0/24); everything made is removed on exit, also when the test fails (and a leftover from a killed run of the
same pid is removed before creating). Needs root, iproute2 and nftables.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


@dataclass
class Host:
    ns: str
    address: str            # the host's own address (inside its namespace)
    gateway: str            # the address on this machine's side it reaches (for a NAT host: the router's LAN side)
    server: str             # this machine's address the host sends SIP to
    public: str             # the address this machine sees the host's packets come from
    link: str = ""          # this machine's end of the host's veth (LAN host) or of its router's (NAT host)

    @property
    def run(self) -> list[str]:
        """The prefix that runs a command inside the host's namespace."""
        return ["ip", "netns", "exec", self.ns]


@dataclass
class LabNet:
    tag: str = field(default_factory=lambda: str(os.getpid() % 10000))
    namespaces: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)       # this machine's ends of veth pairs
    _n: int = 0

    def _name(self, kind: str) -> str:
        self._n += 1
        return f"vt{self.tag}{kind}{self._n}"

    def _ns(self, name: str) -> str:
        sh("ip", "netns", "del", name, check=False)
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def _uplink(self, ns: str, subnet: str) -> tuple[str, str, str, str]:
        """A veth pair from this machine (`{ns}a`, SUBNET.1/24) into namespace `ns` (`{ns}b`, SUBNET.2/24), both
        ends up: (here, there, this machine's address, the namespace's address)."""
        here, there = f"{ns}a", f"{ns}b"
        sh("ip", "link", "del", here, check=False)
        sh("ip", "link", "add", here, "type", "veth", "peer", "name", there)
        self.links.append(here)
        sh("ip", "link", "set", there, "netns", ns)
        server, address = f"{subnet}.1", f"{subnet}.2"
        sh("ip", "addr", "add", f"{server}/24", "dev", here)
        sh("ip", "link", "set", here, "up")
        sh("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", there)
        sh("ip", "-n", ns, "link", "set", there, "up")
        return here, there, server, address

    def lan_host(self) -> Host:
        """A host on a LAN segment shared with this machine: 10.77.N.2 <-> 10.77.N.1 (this machine)."""
        n = self._n + 1
        ns = self._ns(self._name("l"))
        here, _, server, address = self._uplink(ns, f"10.77.{n}")
        sh("ip", "-n", ns, "route", "add", "default", "via", server)
        return Host(ns=ns, address=address, gateway=server, server=server, public=address, link=here)

    def alias(self, host: Host, last_octet: int) -> str:
        """Another address of this machine on `host`'s link (e.g. the public address a server behind NAT is reached
        at, forwarded to it): 10.77.N.<last_octet>. Removed with the link."""
        address = host.server.rsplit(".", 1)[0] + f".{last_octet}"
        sh("ip", "addr", "add", f"{address}/24", "dev", host.link)
        return address

    def nat_host(self, udp_timeout: int | None = None) -> Host:
        """A host with a private address behind a router namespace that masquerades to this machine:
        host 192.168.77.2 -> router 192.168.77.1 | router 10.78.N.2 -> this machine 10.78.N.1.
        `udp_timeout`: the router forgets a UDP mapping idle this many seconds (its conntrack; Linux: 30 s, 120 s
        once answered), like a home router - a host not kept alive cannot be reached from outside after that."""
        n = self._n + 1
        router = self._ns(self._name("r"))
        host = self._ns(self._name("h"))
        wan_here, wan_there, server, router_wan = self._uplink(router, f"10.78.{n}")
        # the LAN side: a veth pair between the router and the host, both inside namespaces
        lan_r, lan_h = f"{host}r", f"{host}h"
        sh("ip", "-n", router, "link", "add", lan_r, "type", "veth", "peer", "name", lan_h, "netns", host)
        sh("ip", "-n", router, "addr", "add", "192.168.77.1/24", "dev", lan_r)
        sh("ip", "-n", router, "link", "set", lan_r, "up")
        sh("ip", "-n", host, "addr", "add", "192.168.77.2/24", "dev", lan_h)
        sh("ip", "-n", host, "link", "set", lan_h, "up")
        sh("ip", "-n", host, "route", "add", "default", "via", "192.168.77.1")
        sh("ip", "-n", router, "route", "add", "default", "via", server)
        sh("ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        nft = ["ip", "netns", "exec", router, "nft"]
        sh(*nft, "add table ip nat")
        sh(*nft, "add chain ip nat post { type nat hook postrouting priority 100; }")
        sh(*nft, f"add rule ip nat post oifname {wan_there} masquerade")
        if udp_timeout is not None:
            sh("ip", "netns", "exec", router, "sysctl", "-qw", f"net.netfilter.nf_conntrack_udp_timeout={udp_timeout}",
               f"net.netfilter.nf_conntrack_udp_timeout_stream={udp_timeout}")
        return Host(ns=host, address="192.168.77.2", gateway="192.168.77.1", server=server, public=router_wan,
                    link=wan_here)

    def close(self) -> None:
        for name in reversed(self.namespaces):
            sh("ip", "netns", "del", name, check=False)
        for link in self.links:
            sh("ip", "link", "del", link, check=False)
        self.namespaces.clear()
        self.links.clear()

    def __enter__(self) -> LabNet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
