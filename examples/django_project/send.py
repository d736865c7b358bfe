"""Send one message through a running ``swsync emulator`` (or a real space), honouring
the Django app's opt-out store, with status callbacks to the app (see README.md).

Usage: ``python send.py TO BODY [APP_URL]`` (``APP_URL`` default
``http://127.0.0.1:8000``). Reads SIGNALWIRE_PROJECT_ID, SIGNALWIRE_API_TOKEN,
SIGNALWIRE_SPACE (the lines ``swsync emulator`` prints), FROM_NUMBER (default
``+15551230001``) and OPT_OUTS (the app's opt-out file, default ``optouts.db``).
Prints ``sent <sid>`` and exits 0, or prints why it refused and exits 3 when TO
has opted out (texted STOP).
"""

from __future__ import annotations

import os
import sys

from swsync import OptedOutError, RestClient
from swsync.optouts import SQLiteOptOutStore


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    to, body = argv[0], argv[1]
    app_url = (argv[2] if len(argv) == 3 else "http://127.0.0.1:8000").rstrip("/")
    opt_outs = SQLiteOptOutStore(os.environ.get("OPT_OUTS", "optouts.db"))
    try:
        with RestClient(opt_outs=opt_outs) as rest:  # credentials from the environment
            sent = rest.messages.create(
                to=to,
                from_=os.environ.get("FROM_NUMBER", "+15551230001"),
                body=body,
                status_callback=app_url + "/signalwire/status",
            )
    except OptedOutError as exc:
        print(f"refused: {exc}")
        return 3
    finally:
        opt_outs.close()
    print(f"sent {sent.sid}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
