"""Drive the Django example against a running ``swsync emulator`` (see README.md).

1. Sends a message over REST with ``status_callback`` pointing at the app: the
   emulator POSTs signed status callbacks to ``/signalwire/status``.
2. POSTs a signed inbound message to ``/signalwire/sms``, as SignalWire would,
   and prints the app's cXML reply.
3. POSTs a signed STOP from the same phone, then tries to send to it with a
   ``RestClient`` that honours the app's opt-out store: ``OptedOutError``.

Reads SIGNALWIRE_PROJECT_ID, SIGNALWIRE_API_TOKEN, SIGNALWIRE_SPACE and
SIGNALWIRE_SIGNING_KEY (the lines ``swsync emulator`` prints) and OPT_OUTS (the
app's opt-out file). Usage: ``python send_demo.py [APP_URL]`` (default
``http://127.0.0.1:8000``). Exits 0 when everything behaved as described.
"""

from __future__ import annotations

import os
import sys
import uuid

import requests

from swsync import OptedOutError, RestClient
from swsync.optouts import SQLiteOptOutStore
from swsync.webhooks import RequestValidator

OURS = "+15551230001"  # "our" number in the emulator
CUSTOMER = "+15557650002"  # a customer's phone


def post_inbound(app_url: str, body: str) -> requests.Response:
    """POST a signed inbound-message webhook, as SignalWire does."""
    url = app_url + "/signalwire/sms"
    form = {"MessageSid": str(uuid.uuid4()), "AccountSid": os.environ["SIGNALWIRE_PROJECT_ID"],
            "From": CUSTOMER, "To": OURS, "Body": body, "NumMedia": "0", "SmsStatus": "received"}
    signature = RequestValidator(os.environ["SIGNALWIRE_SIGNING_KEY"]).compute_signature(url, form)
    return requests.post(url, data=form, headers={"X-SignalWire-Signature": signature}, timeout=10)


def main(app_url: str) -> int:
    opt_outs = SQLiteOptOutStore(os.environ.get("OPT_OUTS", "optouts.db"))
    with RestClient(opt_outs=opt_outs) as rest:  # credentials from the environment
        sent = rest.messages.create(to=CUSTOMER, from_=OURS, body="Your order shipped",
                                    status_callback=app_url + "/signalwire/status")
        print(f"sent {sent.sid}; its status callbacks go to {app_url}/signalwire/status")

        reply = post_inbound(app_url, "hello")
        print(f"inbound 'hello' -> {reply.status_code} {reply.text}")
        stop = post_inbound(app_url, "STOP")
        print(f"inbound 'STOP' -> {stop.status_code} {stop.text}")
        try:
            rest.messages.create(to=CUSTOMER, from_=OURS, body="20% off today!")
        except OptedOutError as exc:
            print(f"refused: {exc}")
        else:
            print("sent to an opted-out number?!")
            return 1
        post_inbound(app_url, "START")  # opt back in, so the demo can run again
    opt_outs.close()
    ok = reply.status_code == 200 and "Thanks, we got: hello" in reply.text
    return 0 if ok and stop.status_code == 200 and "<Message>" not in stop.text else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "http://127.0.0.1:8000"))
