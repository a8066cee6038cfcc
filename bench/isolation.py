#!/usr/bin/env python3
"""Per-client cost benchmark (issue 15): the gateway's RSS while clients
that never read abuse it. Not a test: it prints figures (see
docs/benchmarks.md, "Per-client cost").

Runs two phases, each on a fresh `presence-gateway demo` (simulator +
gateway, default [session] settings) from the binary given with --bin, so
that one phase's freed heap does not hide the next one's growth, sampling
the gateway's VmRSS (/proc/PID/status) every 250 ms:

  ws   3 WebSocket connections (4 KiB receive buffers) each send 2 000 valid
       `subscribe`s (alternating filters, so no two snapshots are shared)
       as fast as they can and never read.
  sse  1 000 SSE connections (4 KiB receive buffers) that never read while
       the simulated org changes presence (--churn events/s).

For each phase: RSS before, peak, and at the end of the window; plus the
gateway's own session metrics when it exports them. Usage:

  bench/isolation.py --bin target/debug/presence-gateway [--agents 1000]
      [--churn 10] [--ws-window 40] [--sse-window 60] [--sse-clients 1000]
      [--phases ws,sse]

Only the standard library; Linux only (reads /proc).
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Sampler(threading.Thread):
    """Samples RSS every 250 ms; keeps the peak."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0.0, False

    def run(self):
        while not self.stop:
            self.peak = max(self.peak, rss_mib(self.pid))
            time.sleep(0.25)


def small_socket(addr):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(addr)
    return s


def ws_frame(text):
    """A masked client text frame (RFC 6455 5.3)."""
    p = text.encode()
    mask = b"\x37\xfa\x21\x3d"
    head = bytes([0x81, 0x80 | len(p)]) if len(p) < 126 else bytes([0x81, 0x80 | 126]) + len(p).to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(p))


def ws_connect(addr):
    s = small_socket(addr)
    s.sendall(
        (
            f"GET /api/v1/ws HTTP/1.1\r\nHost: {addr[0]}:{addr[1]}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def sse_connect(addr):
    s = small_socket(addr)
    s.sendall(
        f"GET /api/v1/stream HTTP/1.1\r\nHost: {addr[0]}:{addr[1]}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    return s


def metrics(base):
    """Selected session series from /metrics (absent ones are left out)."""
    try:
        text = urllib.request.urlopen(base + "/metrics", timeout=60).read().decode()
    except Exception:
        return {}
    out = {}
    for line in text.splitlines():
        m = re.match(
            r'(presence_gateway_(?:disconnects_total\{reason="(?:slow_consumer|transport_closed)"\}|session_queued_bytes|'
            r"session_queued_bytes_peak|subscribes_coalesced_total|session_write_timeouts_total|"
            r'connections\{transport="(?:ws|sse)"\}))\s+(\S+)$',
            line,
        )
        if m:
            out[m.group(1).replace("presence_gateway_", "")] = float(m.group(2))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--label", default=None)
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--churn", type=int, default=10)
    ap.add_argument("--ws-window", type=float, default=40)
    ap.add_argument("--sse-window", type=float, default=60)
    ap.add_argument("--sse-clients", type=int, default=1000)
    ap.add_argument("--phases", default="ws,sse", help="comma-separated: ws, sse")
    a = ap.parse_args()

    res = {"label": a.label or a.bin, "agents": a.agents, "churn_per_s": a.churn}
    for phase in a.phases.split(","):
        gw, base, addr = start(a)
        try:
            res["snapshot_bytes"] = len(urllib.request.urlopen(base + "/api/v1/agents", timeout=30).read())
            (ws_phase if phase == "ws" else sse_phase)(a, gw, base, addr, res)
        finally:
            gw.terminate()
            try:
                gw.wait(10)
            except subprocess.TimeoutExpired:
                gw.kill()
    for k, v in res.items():
        if isinstance(v, float):
            res[k] = round(v, 1)
    print(json.dumps(res, indent=1))


def start(a):
    """Starts the demo; returns (process, base URL, (host, port)) once ready."""
    gw = subprocess.Popen(
        [a.bin, "demo", "--listen", "127.0.0.1:0", "--sim-listen", "127.0.0.1:0",
         "--agents", str(a.agents), "--churn", str(a.churn)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    base = None
    for line in gw.stdout:
        m = re.search(r"READY gateway=(http://\S+)", line)
        if m:
            base = m.group(1)
            break
    assert base, "gateway did not start"
    host, port = base[len("http://"):].split(":")
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/readyz", timeout=2)
            break
        except Exception:
            time.sleep(0.2)
    return gw, base, (host, int(port))


def ws_phase(a, gw, base, addr, res):
    """3 WebSocket connections x 2 000 subscribes, never read."""
    res["ws_rss_before_mib"] = rss_mib(gw.pid)
    conns = [ws_connect(addr) for _ in range(3)]
    samp = Sampler(gw.pid)
    samp.start()
    sent = 0

    def flood(s):
        nonlocal sent
        for i in range(2000):
            f = "AVAILABLE" if i % 2 == 0 else "BREAK"
            try:
                s.sendall(ws_frame(json.dumps({"type": "subscribe", "filter": {"presence": f}})))
                sent += 1
            except OSError:
                return

    for c in conns:
        threading.Thread(target=flood, args=(c,), daemon=True).start()
    time.sleep(a.ws_window)
    samp.stop = True
    samp.join()
    res["ws_subscribes_sent"] = sent
    res["ws_rss_peak_mib"] = samp.peak
    res["ws_rss_end_mib"] = rss_mib(gw.pid)
    res["ws_metrics"] = metrics(base)
    for c in conns:
        c.close()


def sse_phase(a, gw, base, addr, res):
    """SSE clients that never read."""
    res["sse_rss_before_mib"] = rss_mib(gw.pid)
    samp = Sampler(gw.pid)
    samp.start()
    sse = [sse_connect(addr) for _ in range(a.sse_clients)]
    time.sleep(a.sse_window)
    samp.stop = True
    samp.join()
    res["sse_rss_peak_mib"] = samp.peak
    res["sse_rss_end_mib"] = rss_mib(gw.pid)
    res["sse_metrics"] = metrics(base)
    for s in sse:
        s.close()

if __name__ == "__main__":
    sys.exit(main())
