"""``Emulator`` itself: the loop-thread methods it kept from 0.1 delegate to its engine."""

from __future__ import annotations

from swsync.emulator import Emulator
from swsync.emulator.store import outcome_for

from ..helpers import FROM, TO


def test_the_loop_thread_methods_of_0_1_still_drive_the_engine(emu: Emulator) -> None:
    async def inbound() -> tuple[str, int]:
        record, sessions = emu.receive_inbound(TO, FROM, "hello", "default", [])
        emu.advance(record, "failed", outcome_for(TO))  # any state: advance() does not check the order
        return record.sid, sessions

    sid, sessions = emu._call(inbound)
    message = emu.get_message(sid)
    assert sessions == 0 and message is not None
    assert message["history"] == ["received", "failed"]

    async def outbound() -> str:
        record = emu.create_outbound(to=TO, from_=FROM, body="out", media=[], direction="outbound-api", origin="rest")
        return record.sid

    sent = emu._call(outbound)
    assert emu.wait_for_status(sent, "delivered", timeout=5)["status"] == "delivered"

    async def relaunch() -> str:
        record = emu.store.new_message(
            account_sid=emu.project, from_=FROM, to=TO, body="again", media=[], direction="outbound-api", origin="rest"
        )
        emu.launch(record, outcome_for(TO), start=0)
        return record.sid

    again = emu._call(relaunch)
    assert emu.wait_for_status(again, "delivered", timeout=5)["status"] == "delivered"

    emu._call(emu.reset_on_loop)
    assert emu.get_message(sid) is None and emu.get_message(again) is None
