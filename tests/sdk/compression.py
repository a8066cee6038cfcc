"""External check of stream compression (issue 18) with standard clients:
Python's `websockets` (its own permessage-deflate implementation) and
Python's zlib inflating a gzip SSE body as it arrives (urllib, chunked).

A client that asks gets compressed frames/bodies the library inflates; one
that does not gets plain ones. Runs against `presence-gateway demo`.

Usage: GATEWAY_URL=http://127.0.0.1:PORT python compression.py
Prints one PASS/FAIL line per check and a final "N passed, N failed".
"""

import asyncio
import http.client
import json
import os
import sys
import traceback
import urllib.parse
import zlib

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

GW = urllib.parse.urlparse(os.environ["GATEWAY_URL"])
WS_URL = f"ws://{GW.netloc}/api/v1/ws"
results = {"passed": 0, "failed": 0}


def report(name, fn):
    try:
        fn()
        results["passed"] += 1
        print(f"PASS {name}")
    except Exception:  # noqa: BLE001 - every failure is reported
        results["failed"] += 1
        print(f"FAIL {name}")
        traceback.print_exc(file=sys.stdout)


async def first_messages(compression):
    kwargs = {"compression": compression, "max_size": 64 << 20}
    async with websockets.connect(WS_URL, **kwargs) as ws:
        exts = [type(e).__name__ for e in ws.protocol.extensions]
        snapshot = None
        while snapshot is None:
            m = json.loads(await asyncio.wait_for(ws.recv(), 20))
            if m["type"] == "snapshot":
                snapshot = m
        # A compressed client message (websockets compresses what it sends
        # once negotiated), answered with a filtered snapshot.
        first = snapshot["agents"][0]["id"]
        await ws.send(json.dumps({"type": "subscribe", "filter": {"agent": [first]}}))
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 20))
            if m["type"] == "snapshot":
                return exts, snapshot, m


def ws_compressed():
    exts, snap, filtered = asyncio.run(first_messages("deflate"))
    assert exts == ["PerMessageDeflate"], exts
    assert len(snap["agents"]) > 0
    assert len(filtered["agents"]) == 1, filtered


def ws_plain():
    exts, snap, filtered = asyncio.run(first_messages(None))
    assert exts == [], exts
    assert len(snap["agents"]) > 0
    assert len(filtered["agents"]) == 1


def sse(gzip):
    c = http.client.HTTPConnection(GW.hostname, GW.port, timeout=20)
    headers = {"Accept": "text/event-stream"}
    if gzip:
        headers["Accept-Encoding"] = "gzip"
    c.request("GET", "/api/v1/stream", headers=headers)
    r = c.getresponse()
    assert r.status == 200, r.status
    enc = r.getheader("Content-Encoding")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if enc == "gzip" else None
    text = b""
    while b"event: snapshot" not in text or not text.endswith(b"\n\n"):
        chunk = r.read1(65536)
        assert chunk, "stream ended"
        text += inflater.decompress(chunk) if inflater else chunk
    c.close()
    event = [e for e in text.split(b"\n\n") if b"event: snapshot" in e][0]
    data = [l for l in event.split(b"\n") if l.startswith(b"data: ")][0][6:]
    return enc, json.loads(data)


def sse_gzip():
    enc, snap = sse(True)
    assert enc == "gzip", enc
    assert len(snap["agents"]) > 0


def sse_plain():
    enc, snap = sse(False)
    assert enc is None, enc
    assert len(snap["agents"]) > 0


report("websockets with permessage-deflate gets compressed frames it inflates", ws_compressed)
report("websockets without compression gets plain frames", ws_plain)
report("SSE with Accept-Encoding: gzip inflates with zlib as it arrives", sse_gzip)
report("SSE without Accept-Encoding gets plain text", sse_plain)
print(f"{results['passed']} passed, {results['failed']} failed")
sys.exit(1 if results["failed"] else 0)
