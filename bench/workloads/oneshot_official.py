"""One-shot cold path, official SDK: ``python oneshot_official.py TO FROM`` connects, sends one message,
waits until delivered, exits 0 (1 if it was not delivered).

A whole program run by path (its directory first on ``sys.path``) by ``bench.compare``'s
cold path, with the early-event shim of ``shim.py`` installed. Credentials and host from
``SIGNALWIRE_PROJECT_ID`` / ``_API_TOKEN`` / ``_SPACE``, the CA from ``SIGNALWIRE_RELAY_CA_FILE``.
"""

from __future__ import annotations

import sys


async def send_one(relay_client_cls: type, to: str, from_: str) -> int:
    """Connect, send one message, wait for it to be delivered; return the exit status."""
    client = relay_client_cls()
    await client.connect()
    try:
        message = await client.send_message(to_number=to, from_number=from_, body="cold start")
        await message.wait(timeout=10)
        return 0 if message.state == "delivered" else 1
    finally:
        await client.disconnect()


def main(argv: list[str]) -> int:
    """Install the shim, run :func:`send_one`."""
    import asyncio

    from shim import install_early_event_shim  # type: ignore[import-not-found]  # this file's directory
    from signalwire.relay import RelayClient

    install_early_event_shim(RelayClient)
    return asyncio.run(send_one(RelayClient, argv[1], argv[2]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
