"""A benchmark-side fix for signalwire-sdk 3.7.5's lost early state events (no imports: the cold script loads it)."""

from __future__ import annotations

from typing import Any


def install_early_event_shim(relay_client_cls: Any) -> None:
    """Work around signalwire-sdk 3.7.5's lost early state events (benchmark use only).

    The official ``send_message`` registers the ``Message`` only after the
    ``messaging.send`` result has resumed the caller, so state events read in the
    meantime reach ``_handle_message_state`` for an unknown id and are dropped.
    This patch (1) makes ``_handle_message_state`` keep events for unknown ids in a
    per-client dict ``{message_id: [payload, ...]}`` instead of dropping them, and
    (2) wraps ``send_message``: right after the original returns (same task step,
    no await in between, so nothing can overtake), it pops that message's held
    events and feeds them, in arrival order, to the original
    ``_handle_message_state``. Nothing else changes: the wire traffic, the
    per-event work and the ``Message`` objects are the SDK's own. The held-event
    dict is unbounded, which is fine for a benchmark and not for production.
    """
    original_state = relay_client_cls._handle_message_state
    original_send = relay_client_cls.send_message

    async def _handle_message_state(self: Any, payload: dict[str, Any]) -> None:
        mid = payload.get("params", {}).get("message_id", "")
        if mid and mid not in self._messages:
            self.__dict__.setdefault("_bench_early", {}).setdefault(mid, []).append(payload)
            return
        await original_state(self, payload)

    async def send_message(self: Any, **kwargs: Any) -> Any:
        message = await original_send(self, **kwargs)
        for payload in self.__dict__.get("_bench_early", {}).pop(message.message_id, ()):
            await original_state(self, payload)
        return message

    relay_client_cls._handle_message_state = _handle_message_state
    relay_client_cls.send_message = send_message
