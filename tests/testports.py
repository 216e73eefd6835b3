"""Loopback ports for test servers, chosen so that nothing else takes them first.

A port from bind(0) lies in the kernel's ephemeral range, which outgoing connections
(PostgreSQL clients, Prosody, slixmpp) draw from too: between the test closing its probe
socket and the server binding it, another connection may take it and the server fails to
start with "Address already in use".  So ports come from below the ephemeral range, each
handed out once per test run, starting at a point derived from the process id so that two
suites running side by side rarely meet (and a port found busy is skipped).
"""
import os
import socket

HOST = "127.0.0.1"


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_LOW = 10000
_HIGH = max(_LOW + 2000, _ephemeral_low())   # exclusive
_span = _HIGH - _LOW
_next = _LOW + (os.getpid() * 997) % _span
_handed = set()


def _bindable(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port():
    """A loopback TCP port below the ephemeral range, free now and not handed out before
    in this process."""
    global _next
    for _ in range(_span):
        port = _next
        _next = _LOW + (_next - _LOW + 1) % _span
        if port not in _handed and _bindable(port):
            _handed.add(port)
            return port
    raise RuntimeError(f"no free loopback port in {_LOW}-{_HIGH - 1}")
