"""One-shot cold path, bare websocket-client: ``python oneshot_bare.py TO FROM`` connects, sends one
message, ACKs events until it is delivered, exits.

A whole program run by path by ``bench.compare``'s cold path; it imports only the
standard library and websocket-client (not ``bare_relay``, whose imports would count
in its start-up time). URL from ``BENCH_RELAY_URL``, credentials from
``SIGNALWIRE_PROJECT_ID`` / ``_API_TOKEN``, the CA from ``SIGNALWIRE_RELAY_CA_FILE``.
"""

from __future__ import annotations

import json
import os
import sys
import uuid


def main(argv: list[str]) -> int:
    """Connect, send one message, wait for ``delivered``."""
    import websocket

    env = os.environ
    ws = websocket.create_connection(
        env["BENCH_RELAY_URL"], skip_utf8_validation=True, sslopt={"ca_certs": env["SIGNALWIRE_RELAY_CA_FILE"]}
    )
    auth = {"project": env["SIGNALWIRE_PROJECT_ID"], "token": env["SIGNALWIRE_API_TOKEN"]}
    version = {"major": 2, "minor": 0, "revision": 0}
    params = {"version": version, "agent": "bench", "event_acks": True, "contexts": ["default"], "authentication": auth}
    ws.send(json.dumps({"jsonrpc": "2.0", "id": "c", "method": "signalwire.connect", "params": params}))
    while json.loads(ws.recv()).get("id") != "c":
        pass
    send = {"context": "default", "to_number": argv[1], "from_number": argv[2], "body": "cold start"}
    ws.send(json.dumps({"jsonrpc": "2.0", "id": str(uuid.uuid4()), "method": "messaging.send", "params": send}))
    while True:
        frame = json.loads(ws.recv())
        if frame.get("method") == "signalwire.event":
            ws.send(json.dumps({"jsonrpc": "2.0", "id": frame["id"], "result": {}}))
            if frame["params"].get("params", {}).get("message_state") == "delivered":
                break
    ws.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
