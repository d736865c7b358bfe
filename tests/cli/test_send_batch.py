"""``swsync send-batch`` end to end against the emulator."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from swsync.cli import main
from swsync.emulator import Emulator
from swsync.emulator.store import UNDELIVERED_NUMBER

from ..helpers import sent_to

FROM = "+15559990000"


@pytest.fixture
def env(emu: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"SIGNALWIRE_PROJECT_ID": emu.project, "SIGNALWIRE_API_TOKEN": emu.token, "SIGNALWIRE_SPACE": emu.rest_url}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("SIGNALWIRE_JWT_TOKEN", raising=False)
    return dict(os.environ)


def write_csv(path: Path, rows: list[str]) -> str:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


def test_bad_rows_are_reported_with_line_numbers_and_nothing_is_sent(
    emu: Any, env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write_csv(
        tmp_path / "in.csv",
        [
            "to,name,media",
            "+15551230001,Ann,",
            "not-a-number,Bob,",  # line 3: bad number
            "+15551230003,Cy,ftp://example.com/a.png",  # line 4: bad media URL
            "+15551230001,Ann,",  # line 5: same as line 2
            '"+15551230005,Dee',  # line 6: unterminated quote -> wrong fields
        ],
    )
    code = main(["send-batch", f, "--from", FROM, "--body", "Hi {name}"])
    err = capsys.readouterr().err
    assert code == 2
    for line in ("line 3:", "line 4:", "line 5: same message", "line 6: wrong number of fields"):
        assert line in err
    assert "nothing was sent" in err
    assert sum(sent_to(emu).values()) == 0


def test_header_problems(env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_csv(tmp_path / "in.csv", ["phone,body", "+15551230001,hi"])
    assert main(["send-batch", f, "--from", FROM]) == 2
    assert "no 'to' column" in capsys.readouterr().err
    f = write_csv(tmp_path / "in2.csv", ["to,body", "+15551230001,hi"])
    assert main(["send-batch", f, "--from", FROM, "--body", "Hi {name}"]) == 2
    assert "{name}" in capsys.readouterr().err
    assert main(["send-batch", str(tmp_path / "missing.csv"), "--from", FROM]) == 2


def test_dry_run_prints_what_it_costs(
    emu: Any, env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write_csv(
        tmp_path / "in.csv",
        [
            "to,body,media",
            "+15551230001,hello,",
            "+15551230002," + "x" * 161 + ",",  # 2 GSM-7 segments
            "+15551230003,\u4f60\u597d,",  # UCS-2
            "+15551230004,pic,https://example.com/a.png",  # MMS
        ],
    )
    assert main(["send-batch", f, "--from", FROM, "--dry-run", "--json"]) == 0
    totals = json.loads(capsys.readouterr().out)
    assert totals == {
        "dry_run": True,
        "messages": 4,
        "segments": 5,
        "mms": 1,
        "by_encoding": {"GSM-7": {"messages": 2, "segments": 3}, "UCS-2": {"messages": 1, "segments": 1}},
    }
    assert main(["send-batch", f, "--from", FROM, "--dry-run"]) == 0
    assert "4 messages, 5 segments" in capsys.readouterr().out
    assert sum(sent_to(emu).values()) == 0


def test_send_out_and_rerun(emu: Any, env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_csv(
        tmp_path / "in.csv", ["to,name,key", "+15551230001,Ann,a", f"{UNDELIVERED_NUMBER},Bob,b", "+15551230003,Cy,c"]
    )
    out = tmp_path / "out.csv"
    argv = ["send-batch", f, "--from", FROM, "--body", "Hi {name}", "--json", "--out", str(out)]
    assert main(argv) == 1  # one undelivered
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    results = {x["key"]: x for x in lines if "key" in x}
    assert {k: r["outcome"] for k, r in results.items()} == {"a": "delivered", "b": "undelivered", "c": "delivered"}
    assert results["b"]["line"] == 3 and results["b"]["reason"] == "carrier_blocked"
    assert lines[-1]["summary"]["delivered"] == 2
    rows = out.read_text().splitlines()
    assert rows[0].startswith("line,to,key,outcome") and len(rows) == 4
    # The same command again sends nothing: every row is yielded from the journal.
    assert main(argv) == 1
    again = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert all(x["replayed"] for x in again if "key" in x)
    assert again[-1]["summary"]["replayed"] == 3
    assert sent_to(emu) == Counter({"+15551230001": 1, UNDELIVERED_NUMBER: 1, "+15551230003": 1})
    with sqlite3.connect(f + ".journal.db") as db:
        assert dict(db.execute("SELECT key, outcome FROM sends")) == {
            "a": "delivered",
            "b": "undelivered",
            "c": "delivered",
        }


def test_unknown_outcomes_have_their_own_exit_code(
    emu: Any, env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write_csv(tmp_path / "in.csv", ["to,body", "+15551230001,hi"])
    emu.faults.response_delay = 1.0
    assert main(["send-batch", f, "--from", FROM, "--timeout", "0.3"]) == 5
    emu.faults.response_delay = 0
    assert "unknown" in capsys.readouterr().err
    assert main(["send-batch", f, "--from", FROM]) == 5  # reported again, not re-sent
    assert sent_to(emu)["+15551230001"] == 1
    assert main(["send-batch", f, "--from", FROM, "--retry-unknown"]) == 0
    assert sent_to(emu)["+15551230001"] == 2


def test_no_progress_bar_when_stderr_is_not_a_terminal(env: dict[str, str], tmp_path: Path) -> None:
    f = write_csv(tmp_path / "in.csv", ["to,body"] + [f"+1555123{i:04d},hi" for i in range(5)])
    p = subprocess.run(
        [sys.executable, "-m", "swsync", "send-batch", f, "--from", FROM],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert "\r" not in p.stderr and "ETA" not in p.stderr
    assert "5 results (5 delivered)" in p.stderr


def read_all(fd: int, timeout: float = 30.0) -> bytes:
    chunks = []
    while True:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, "no output from the child in time"
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def test_progress_bar_on_a_terminal(env: dict[str, str], tmp_path: Path) -> None:
    f = write_csv(tmp_path / "in.csv", ["to,body"] + [f"+1555123{i:04d},hi" for i in range(20)])
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "swsync", "send-batch", f, "--from", FROM],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    try:
        screen = read_all(master).decode()
    finally:
        os.close(master)
    assert proc.wait(30) == 0
    assert "\r[" in screen
    assert "20/20 sent" in screen and "20 delivered" in screen and "0 failed" in screen
    assert "/s" in screen and "ETA" in screen


BIG = 300


@pytest.mark.timeout(120)
def test_ctrl_c_stops_cleanly_and_the_same_command_resumes(tmp_path: Path) -> None:
    f = write_csv(tmp_path / "in.csv", ["to,body"] + [f"+1555400{i:04d},hi" for i in range(BIG)])
    with Emulator(state_delay=0.0) as emu:
        env = dict(
            os.environ, SIGNALWIRE_PROJECT_ID=emu.project, SIGNALWIRE_API_TOKEN=emu.token, SIGNALWIRE_SPACE=emu.rest_url
        )
        argv = [sys.executable, "-m", "swsync", "send-batch", f, "--from", FROM, "--rate", "50"]
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        for _ in range(10):
            assert proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "stopping" in err and "interrupted; run the same command again" in err
        with sqlite3.connect(f + ".journal.db") as db:
            outcomes = Counter(o for (o,) in db.execute("SELECT outcome FROM sends"))
        assert set(outcomes) == {"delivered"}  # answers in flight were collected
        first = outcomes["delivered"]
        assert 10 <= first < BIG
        p = subprocess.run(argv[:-2], env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        assert f"{first} recorded earlier" in p.stderr
        counts = sent_to(emu)
    assert len(counts) == BIG and set(counts.values()) == {1}


def test_ctrl_c_during_a_slow_pace_sends_nothing_more(emu: Any, env: dict[str, str], tmp_path: Path) -> None:
    # --rate 1: after the first row, every sender waits for its turn; Ctrl-C must end
    # those waits at once, with no further row sent.
    f = write_csv(tmp_path / "r20.csv", ["to,name"] + [f"+1555410{i:04d},n{i}" for i in range(20)])
    argv = [sys.executable, "-m", "swsync", "send-batch", f, "--from", FROM, "--body", "Hi {name}", "--rate", "1"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline()  # the first row is out
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    sent = sum(sent_to(emu).values())
    assert 1 <= sent <= 2  # the first, and at most one whose turn came before the signal
    with sqlite3.connect(f + ".journal.db") as db:
        assert db.execute("SELECT count(*) FROM sends").fetchone()[0] == sent
    p = subprocess.run(argv[:-2], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    counts = sent_to(emu)
    assert len(counts) == 20 and set(counts.values()) == {1}


def test_a_rerun_gives_the_same_exit_code(
    emu: Any, env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from swsync.emulator.store import NO_DLR_NUMBER

    f = write_csv(tmp_path / "nodlr.csv", ["to,body,key", f"{NO_DLR_NUMBER},no receipt,a1", "+15551230001,hello,a2"])
    argv = ["send-batch", f, "--from", FROM, "--timeout", "0.5"]
    assert main(argv) == 3
    assert main(argv) == 3  # the same state: still no final state for a1
    out = capsys.readouterr().out
    assert out.count("no final state") == 2
    assert sent_to(emu)[NO_DLR_NUMBER] == 1


def test_a_reader_going_away_does_not_stop_the_batch(emu: Any, env: dict[str, str], tmp_path: Path) -> None:
    f = write_csv(tmp_path / "in.csv", ["to,body"] + [f"+1555420{i:04d},hi" for i in range(10)])
    r, w = os.pipe()
    os.close(r)  # `| head -1` that has already gone
    p = subprocess.run(
        [sys.executable, "-m", "swsync", "send-batch", f, "--from", FROM],
        env=env,
        stdout=w,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    os.close(w)
    assert p.returncode == 1, p.stderr
    assert "connection failed" not in p.stderr
    assert "some results were not written (the reader went away)" in p.stderr
    assert "10 results (10 delivered)" in p.stderr
    assert len(sent_to(emu)) == 10
    with sqlite3.connect(f + ".journal.db") as db:
        assert dict(db.execute("SELECT outcome, count(*) FROM sends GROUP BY 1")) == {"delivered": 10}


def test_a_full_stdout_does_not_stop_the_batch(emu: Any, env: dict[str, str], tmp_path: Path) -> None:
    f = write_csv(tmp_path / "in.csv", ["to,body"] + [f"+1555430{i:04d},hi" for i in range(5)])
    with open("/dev/full", "w") as full:
        p = subprocess.run(
            [sys.executable, "-m", "swsync", "send-batch", f, "--from", FROM, "--json"],
            env=env,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert p.returncode == 1, p.stderr
    assert "connection failed" not in p.stderr
    assert p.stderr.count("cannot write to standard output") == 1
    assert "5 results (5 delivered)" in p.stderr
    assert len(sent_to(emu)) == 5


def test_bad_out_and_journal_paths_are_usage_errors(
    emu: Any, env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    f = write_csv(tmp_path / "in.csv", ["to,body", "+15551230001,hi"])
    # Nothing may connect: point the client at a port where nobody listens.
    monkeypatch.setenv("SIGNALWIRE_SPACE", "http://127.0.0.1:9")
    assert main(["send-batch", f, "--from", FROM, "--out", "/nonexistent/o.csv"]) == 2
    err = capsys.readouterr().err
    assert "--out /nonexistent/o.csv: cannot write" in err and "connection" not in err
    assert main(["send-batch", f, "--from", FROM, "--journal", "/nonexistent/j.db"]) == 2
    err = capsys.readouterr().err
    assert "--journal /nonexistent/j.db" in err and "connection" not in err
    assert "Traceback" not in err and "OperationalError" not in err


@pytest.mark.usefixtures("clean_signalwire_env")
def test_missing_credentials_name_the_cli_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_csv(tmp_path / "in.csv", ["to,body", "+15551230001,hi"])
    assert main(["send-batch", f, "--from", FROM]) == 2
    err = capsys.readouterr().err
    assert "pass --token or set SIGNALWIRE_API_TOKEN (or SIGNALWIRE_JWT_TOKEN)" in err
    assert "token=" not in err
    assert main(["--token", "t", "send-batch", f, "--from", FROM]) == 2
    err = capsys.readouterr().err
    assert "pass --project or set SIGNALWIRE_PROJECT_ID" in err and "project=" not in err


def test_rate_spaces_sends_evenly_by_default(env: dict[str, str]) -> None:
    from swsync.cli import build_parser
    from swsync.cli.send_batch import _client

    args = build_parser().parse_args(["send-batch", "x.csv", "--from", FROM, "--rate", "5"])
    client = _client(args)
    assert client.rate_limit.per_second == 5 and client.rate_limit.burst == 1
    args = build_parser().parse_args(["send-batch", "x.csv", "--from", FROM, "--rate", "5", "--burst", "5"])
    assert _client(args).rate_limit.burst == 5


def test_a_failing_out_file_does_not_stop_the_batch(
    emu: Any, env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write_csv(tmp_path / "in.csv", ["to,body"] + [f"+1555440{i:04d},hi" for i in range(3)])
    assert main(["send-batch", f, "--from", FROM, "--out", "/dev/full"]) == 1
    captured = capsys.readouterr()
    assert "cannot write to /dev/full" in captured.err and "connection failed" not in captured.err
    assert captured.out.count("delivered") == 3
    assert len(sent_to(emu)) == 3
