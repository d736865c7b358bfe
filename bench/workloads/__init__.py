"""The client programs the benchmarks measure, one module per client.

Each module is importable (``bench.relay`` and ``bench.rest`` run the workloads
in-process) and runnable as a client subprocess of ``bench.compare`` through
``python -m bench.workloads``: the parent writes the spec (one JSON line) to the
subprocess's stdin; the subprocess connects, warms up and prints
``{"ready": true}``; the parent writes ``go``; the subprocess runs the workload
and prints one JSON result line (:func:`bench.workloads.harness.result`).

Client libraries (swsync, signalwire-sdk, twilio, websocket-client, requests) are
imported inside the functions that use them, so that each client subprocess loads
its own library and nothing else (peak RSS stays comparable) and every module
imports with only the ``dev`` extra installed. ``oneshot_official`` and
``oneshot_bare`` (the one-shot cold path), ``crash_sender`` (``bench.bulk crash``)
and ``send_many`` (``bench.scaling``) are whole programs, run by path from :data:`DIR`.
"""

from pathlib import Path

DIR = Path(__file__).resolve().parent  # where the programs run by path are
