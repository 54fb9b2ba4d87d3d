"""The test networks themselves (tests/netns.py): a LAN host reaches this machine from its own address, a host behind
the NAT router is seen from the router's address, and nothing is left behind - also after a failure inside."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from netns import LabNet, sh

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


def source_seen(server: str, prefix: list[str], port: int = 47001) -> str:
    """Send one UDP datagram from inside a namespace to `server`; the source address this machine sees."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((server, port))
        sock.settimeout(5)
        send = f"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('{server}', {port}))"
        subprocess.run([*prefix, sys.executable, "-c", send], check=True, timeout=10)
        _, (source, _) = sock.recvfrom(16)
        return str(source)


def ours(tag: str) -> list[str]:
    namespaces = sh("ip", "netns", "list").stdout.split()
    links = sh("ip", "-o", "link").stdout
    return [n for n in namespaces if n.startswith(f"vt{tag}")] + [w for w in links.split() if f"vt{tag}" in w]


def test_lan_and_nat_hosts_and_cleanup() -> None:
    with LabNet() as net:
        lan = net.lan_host()
        nat = net.nat_host()
        assert source_seen(lan.server, lan.run) == lan.address
        assert source_seen(nat.server, nat.run) == nat.public != nat.address     # masqueraded
        tag = net.tag
        assert ours(tag)
    assert not ours(tag)


def test_cleanup_after_a_failure() -> None:
    with pytest.raises(RuntimeError), LabNet() as net:
        net.lan_host()
        tag = net.tag
        raise RuntimeError("the test failed half-way")
    assert not ours(tag)
