"""The official signalwire-sdk 3.7.5 asyncio ``RelayClient``: tasks awaiting ``send_message`` / ``wait``."""

from __future__ import annotations

import time
from typing import Any

from bench.workloads.harness import FROM, INBOUND_CONTEXT, TO, Meter, ready, result
from bench.workloads.shim import install_early_event_shim


class _Tasks:
    """The send workloads' shared counters: ``conc`` tasks of ``per`` messages each."""

    def __init__(self, client: Any, per: int, wait_timeout: float) -> None:
        import asyncio

        self.client, self.per, self.wait_timeout = client, per, wait_timeout
        self.lat: list[float] = []
        self.lost = self.errors = self.completed = 0
        self.total = 0
        self.all_done = asyncio.Event()

    async def send_wait(self) -> None:
        import asyncio

        for _ in range(self.per):
            t0 = time.perf_counter()
            try:
                msg = await self.client.send_message(to_number=TO, from_number=FROM, body="benchmark")
            except Exception:
                self.errors += 1
                continue
            self.lat.append(time.perf_counter() - t0)
            try:
                await msg.wait(timeout=self.wait_timeout)
            except asyncio.TimeoutError:
                self.lost += 1

    def on_completed(self, _event: Any) -> None:
        self.completed += 1
        if self.completed == self.total:
            self.all_done.set()

    async def fire(self) -> None:
        for _ in range(self.per):
            t0 = time.perf_counter()
            try:
                await self.client.send_message(
                    to_number=TO, from_number=FROM, body="benchmark", on_completed=self.on_completed
                )
            except Exception:
                self.errors += 1
                continue
            self.lat.append(time.perf_counter() - t0)


async def _inbound(client: Any, n: int, wait_timeout: float) -> dict[str, Any]:
    import asyncio

    count = 0
    done = asyncio.Event()

    @client.on_message
    async def _count(_message: Any) -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set()

    await asyncio.get_running_loop().run_in_executor(None, ready)
    meter = Meter()
    try:
        await asyncio.wait_for(done.wait(), wait_timeout)
    except asyncio.TimeoutError:
        pass
    return result(n, meter.stop(), None, lost=n - count)


async def _send(client: Any, spec: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    conc = spec["concurrency"]
    tasks = _Tasks(client, spec["n"] // conc, spec["wait_timeout"])
    tasks.total = total = tasks.per * conc
    fire = spec["workload"] != "send-wait"
    await asyncio.get_running_loop().run_in_executor(None, ready)
    meter = Meter()
    await asyncio.gather(*((tasks.fire() if fire else tasks.send_wait()) for _ in range(conc)))
    if fire:
        try:
            await asyncio.wait_for(tasks.all_done.wait(), spec["wait_timeout"])
        except asyncio.TimeoutError:
            pass
        tasks.lost = total - tasks.completed - tasks.errors
    usage = meter.stop()
    lost, errors = tasks.lost, tasks.errors
    return result(total, usage, tasks.lat, lost=lost, errors=errors, delivered=total - lost - errors)


async def _main(spec: dict[str, Any], relay_client_cls: Any) -> dict[str, Any]:
    emu, workload = spec["emu"], spec["workload"]
    host = emu["relay_url"].split("://", 1)[1]  # it always uses wss://HOST
    contexts = [INBOUND_CONTEXT] if workload == "inbound" else None
    client = relay_client_cls(project=emu["project"], token=emu["token"], host=host, contexts=contexts)
    await client.connect()
    try:
        if workload == "inbound":
            return await _inbound(client, spec["n"], spec["wait_timeout"])
        if spec.get("shim", True):
            warm = await client.send_message(to_number=TO, from_number=FROM, body="warm-up")
            await warm.wait(timeout=10)
        return await _send(client, spec)
    finally:
        await client.disconnect()


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Client subprocess: send-wait, fire-forget or inbound; ``spec["shim"]`` False runs the SDK as shipped."""
    import asyncio

    from signalwire.relay import RelayClient  # TLS CA from SIGNALWIRE_RELAY_CA_FILE

    if spec.get("shim", True):
        install_early_event_shim(RelayClient)
    return asyncio.run(_main(spec, RelayClient))
