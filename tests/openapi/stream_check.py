"""Real stream messages against docs/stream.schema.json.

Collects messages from a running gateway (the demo: simulator churn gives
deltas) over SSE and WebSocket -- snapshot, status, delta, interaction,
queues, the error answer to a malformed client message, the WebSocket
close codes of a client close (1000), of repeated malformed messages
(1008) and of an oversized message (1002), and finally the drain: SIGTERM to the gateway ($GATEWAY_PID) with
streams open gives the `restarting` status, WebSocket 1001 and the SSE
`close` message -- and validates every message against the schema (jsonschema_rs,
which Schemathesis already installs). Each message type must be seen at
least once within its deadline.

Usage: GATEWAY_URL=http://127.0.0.1:PORT GATEWAY_PID=… SCHEMA=docs/stream.schema.json python stream_check.py
"""

import json
import os
import signal
import sys
import time

import jsonschema_rs
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

GW = os.environ["GATEWAY_URL"].rstrip("/")
SCHEMA = json.load(open(os.environ["SCHEMA"], encoding="utf-8"))
VALIDATOR = jsonschema_rs.validator_for(SCHEMA)
CLOSE_CODES = set(SCHEMA["$defs"]["closeCode"]["enum"])

seen = {}
problems = []


def check(msg, where):
    errors = [f"{e.instance_path}: {e.message}" for e in VALIDATOR.iter_errors(msg)]
    kind = msg.get("type") if isinstance(msg, dict) else None
    if errors:
        problems.append(f"{where}: {kind} does not match the schema: {errors[:3]}")
    seen[kind] = seen.get(kind, 0) + 1


def sse(path, want, deadline_s=30):
    """Reads SSE events from `path` until every type in `want` was seen."""
    found = set()
    end = time.monotonic() + deadline_s
    with requests.get(GW + path, stream=True, timeout=(5, deadline_s)) as r:
        if r.status_code != 200:
            problems.append(f"GET {path}: {r.status_code} {r.text[:200]}")
            return
        event, data = None, []
        # Bytes, split on line ends only: str.splitlines (what
        # decode_unicode=True uses) also splits on U+2028, U+0085 and
        # other characters a JSON string may hold.
        for raw_bytes in r.iter_lines():
            raw = raw_bytes.decode("utf-8")
            if raw == "":
                if data:
                    msg = json.loads("\n".join(data))
                    if msg.get("type") != event:
                        problems.append(f"SSE event {event!r} carries type {msg.get('type')!r}")
                    check(msg, f"SSE {path}")
                    found.add(msg.get("type"))
                event, data = None, []
                if want <= found or time.monotonic() > end:
                    break
                continue
            if raw.startswith("event:"):
                event = raw[6:].strip()
            elif raw.startswith("data:"):
                data.append(raw[5:].lstrip())
    missing = want - found
    if missing:
        problems.append(f"SSE {path}: no {sorted(missing)} within {deadline_s} s")


def ws_messages(path, want, deadline_s=30):
    """Reads WebSocket messages until every type in `want` was seen."""
    found = set()
    end = time.monotonic() + deadline_s
    with connect(GW.replace("http", "ws", 1) + path, max_size=None) as ws:
        while not want <= found and time.monotonic() < end:
            msg = json.loads(ws.recv(timeout=max(0.1, end - time.monotonic())))
            check(msg, f"WS {path}")
            found.add(msg.get("type"))
        # A malformed message: an `error`, the socket stays open.
        ws.send("this is not JSON")
        while time.monotonic() < end:
            msg = json.loads(ws.recv(timeout=max(0.1, end - time.monotonic())))
            check(msg, f"WS {path}")
            if msg.get("type") == "error":
                found.add("error")
                break
        ws.close()  # we close: the gateway answers 1000
        code = ws.close_code
        record_close(code, 1000, "client close")
    missing = want - found
    if missing:
        problems.append(f"WS {path}: no {sorted(missing)} within {deadline_s} s")


def record_close(code, expected, what):
    if code not in CLOSE_CODES:
        problems.append(f"{what}: close code {code} is not in the schema's closeCode")
    elif code != expected:
        problems.append(f"{what}: close code {code}, expected {expected}")
    else:
        seen[f"close {code}"] = seen.get(f"close {code}", 0) + 1


def ws_malformed_close(deadline_s=30):
    """More than session.max_malformed_per_minute (10) bad messages: 1008."""
    with connect(GW.replace("http", "ws", 1) + "/api/v1/ws", max_size=None) as ws:
        end = time.monotonic() + deadline_s
        try:
            for _ in range(12):
                ws.send("{")
            while time.monotonic() < end:
                msg = json.loads(ws.recv(timeout=max(0.1, end - time.monotonic())))
                check(msg, "WS malformed")
        except ConnectionClosed:
            pass
        code = ws.close_code
        record_close(code, 1008, "malformed messages")


def ws_oversized_close(deadline_s=30):
    """A message over session.max_client_message_bytes (16 KiB): 1002."""
    with connect(GW.replace("http", "ws", 1) + "/api/v1/ws", max_size=None) as ws:
        end = time.monotonic() + deadline_s
        try:
            ws.send('{"type":"subscribe","filter":{"agent":"' + "x" * 20000 + '"}}')
            while time.monotonic() < end:
                msg = json.loads(ws.recv(timeout=max(0.1, end - time.monotonic())))
                check(msg, "WS oversized")
        except ConnectionClosed:
            pass
        record_close(ws.close_code, 1002, "oversized message")


def drain(pid, deadline_s=30):
    """SIGTERM to the gateway with a WebSocket and an SSE stream open: each
    gets the `restarting` status, then WebSocket close 1001 and the SSE
    `close` message (code 1001)."""
    ws = connect(GW.replace("http", "ws", 1) + "/api/v1/ws", max_size=None)
    sse_resp = requests.get(GW + "/api/v1/stream", stream=True, timeout=(5, deadline_s))
    lines = sse_resp.iter_lines(decode_unicode=True)
    for raw in lines:  # up to the first complete event: the stream is open
        if raw == "":
            break
    first = json.loads(ws.recv(timeout=deadline_s))
    check(first, "WS before drain")
    os.kill(pid, signal.SIGTERM)
    states = []
    try:
        while True:
            msg = json.loads(ws.recv(timeout=deadline_s))
            check(msg, "WS drain")
            if msg.get("type") == "status":
                states.append(msg["state"])
    except ConnectionClosed:
        pass
    record_close(ws.close_code, 1001, "WebSocket drain")
    if "restarting" not in states:
        problems.append(f"WebSocket drain: no restarting status ({states})")
    data, closed = [], None
    try:
        for raw in lines:
            if raw.startswith("data:"):
                data.append(raw[5:].lstrip())
            elif raw == "" and data:
                msg = json.loads("\n".join(data))
                data = []
                check(msg, "SSE drain")
                if msg.get("type") == "close":
                    closed = msg.get("code")
    except requests.exceptions.RequestException:
        pass
    record_close(closed, 1001, "SSE drain (close message)")


def main():
    agents = requests.get(GW + "/api/v1/agents", timeout=10).json()["agents"]
    agent = agents[0]["id"]
    sse("/api/v1/stream", {"snapshot", "status", "delta"})
    sse(f"/api/v1/stream?agent={agent}&interactions=1&queues=1", {"snapshot", "status", "interaction", "queues"})
    ws_messages("/api/v1/ws", {"snapshot", "status", "delta"})
    ws_messages(f"/api/v1/ws?agent={agent}&interactions=1", {"snapshot", "interaction"})
    ws_malformed_close()
    ws_oversized_close()
    # Last: this stops the gateway.
    drain(int(os.environ["GATEWAY_PID"]))
    print("stream messages seen:", ", ".join(f"{k}×{v}" for k, v in sorted(seen.items(), key=str)))
    for p in problems:
        print("FAIL", p)
    print("stream schema check:", "ok" if not problems else f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
