"""The ``swsync.testing`` pytest plugin, used the way a user's test suite uses it.

The plugin is active through swsync's ``pytest11`` entry point (no ``-p`` option,
no conftest), which ``test_plugin_is_loaded_through_the_entry_point`` checks.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]


def test_plugin_is_loaded_through_the_entry_point(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_plugin(request):
            assert request.config.pluginmanager.has_plugin("swsync")
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_importing_the_plugin_does_not_import_the_emulator() -> None:
    # pytest loads the plugin in every run of every project that has swsync installed.
    code = (
        "import sys, swsync.testing; "
        "heavy = [m for m in ('aiohttp', 'requests', 'swsync.emulator', 'swsync.rest') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_fixtures_send_receive_and_rest(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import queue

        def test_send(swsync_relay_client, swsync_emulator):
            message = swsync_relay_client.send_message("+15551234567", "+15559876543", "hi")
            assert message.wait(timeout=5).message_state == "delivered"
            assert swsync_emulator.get_message(message.message_id)["body"] == "hi"

        def test_receive(swsync_relay_client, swsync_emulator):
            inbox = queue.SimpleQueue()
            swsync_relay_client.on_message(inbox.put)
            swsync_emulator.inject_inbound(to_number="+15559876543", from_number="+15551234567",
                                           body="ping", context="default")
            assert inbox.get(timeout=5).body == "ping"

        def test_rest(swsync_rest_client, swsync_emulator):
            record = swsync_rest_client.messages.create(to="+15551234567", from_="+15559876543", body="r")
            swsync_emulator.wait_for_status(record.sid, "delivered", timeout=5)
            assert swsync_rest_client.messages(record.sid).fetch().status == "delivered"

        def test_default_state_delay_is_zero(swsync_emulator):
            assert swsync_emulator.state_delay == 0
        """
    )
    pytester.runpytest().assert_outcomes(passed=4)


def test_each_test_gets_a_fresh_emulator(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_one(swsync_emulator):
            swsync_emulator.add_messages(3)

        def test_two(swsync_rest_client):
            assert swsync_rest_client.messages.list() == []  # nothing left from test_one
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_options_by_marker_and_fixture_override(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def swsync_emulator_options():
            return {"state_delay": 0.01, "project": "from-conftest"}
        """
    )
    pytester.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.swsync_emulator(state_delay=0.02)

        def test_module_marker_beats_fixture(swsync_emulator):
            assert swsync_emulator.state_delay == 0.02
            assert swsync_emulator.project == "from-conftest"

        @pytest.mark.swsync_emulator(state_delay=0.03)
        def test_function_marker_beats_module_marker(swsync_emulator):
            assert swsync_emulator.state_delay == 0.03
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_options_by_indirect_parameter(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("swsync_emulator_options", [{"state_delay": 0.04}], indirect=True)
        def test_indirect(swsync_emulator):
            assert swsync_emulator.state_delay == 0.04
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_marker_with_positional_arguments_is_an_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.swsync_emulator(0.5)
        def test_bad(swsync_emulator):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*takes keyword arguments only*"])


def test_marker_is_registered(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.swsync_emulator(state_delay=0.01)
        def test_marked(swsync_emulator):
            pass
        """
    )
    pytester.runpytest("--strict-markers").assert_outcomes(passed=1)


def test_fixtures_skip_without_aiohttp(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import sys
        import pytest

        @pytest.fixture(autouse=True)
        def no_aiohttp(monkeypatch):
            monkeypatch.setitem(sys.modules, "aiohttp", None)  # "import aiohttp" now fails
        """
    )
    pytester.makepyfile(
        """
        def test_emulator(swsync_emulator):
            raise AssertionError("not reached")

        def test_client(swsync_relay_client):
            raise AssertionError("not reached")
        """
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=2)
    assert result.stdout.str().count("needs aiohttp: pip install 'swsync[emulator]'") == 2


# -- the outbox fixture ----------------------------------------------------------------------------------


def test_outbox_fixture_sees_sends_and_replies_as_the_phone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import queue

        import pytest

        APP, PHONE = "+15559876543", "+15551234567"

        def notify(client, to, text):  # the code under test
            client.send_message(to, APP, text)

        def test_what_was_sent(swsync_relay_client, swsync_rest_client, swsync_outbox):
            assert len(swsync_outbox) == 0
            swsync_outbox.assert_nothing_sent()
            notify(swsync_relay_client, PHONE, "Your code is 1234")
            swsync_rest_client.messages.create(to="+15550001111", from_=APP, body="via REST")
            assert len(swsync_outbox) == 2
            first = swsync_outbox[0]
            assert (first.to, first.from_, first.body) == (PHONE, APP, "Your code is 1234")
            assert swsync_outbox.last.body == "via REST"
            assert swsync_outbox.assert_sent(to=PHONE, contains="code").sid == first.sid
            assert [m.body for m in swsync_outbox.filter(to="+15550001111")] == ["via REST"]
            with pytest.raises(AssertionError, match="found 0; sent:"):
                swsync_outbox.assert_sent(to="+15550009999")
            with pytest.raises(AssertionError, match="expected 2 message"):
                swsync_outbox.assert_sent(to=PHONE, count=2)
            with pytest.raises(AssertionError, match="expected no message, 2 sent"):
                swsync_outbox.assert_nothing_sent()

        def test_reply_as_the_phone(swsync_relay_client, swsync_outbox, swsync_emulator):
            received = queue.SimpleQueue()
            swsync_relay_client.on_message(received.put)
            notify(swsync_relay_client, PHONE, "Reply YES to confirm")
            sid = swsync_outbox.reply(swsync_outbox.last, "YES")
            inbound = received.get(timeout=5)
            assert (inbound.message_id, inbound.from_number, inbound.to_number, inbound.body) == (
                sid, PHONE, APP, "YES")
            assert len(swsync_outbox) == 1  # replies are not sends
            swsync_outbox.reply(APP, "and another", from_="+15550002222")
            assert received.get(timeout=5).from_number == "+15550002222"
            with pytest.raises(TypeError):
                swsync_outbox.reply(APP, "who am I?")

        def test_wait_for_a_send_from_another_thread(swsync_relay_client, swsync_outbox):
            import threading
            worker = threading.Thread(target=notify, args=(swsync_relay_client, PHONE, "later"))
            worker.start()
            [message] = swsync_outbox.wait_for(contains="LATER", timeout=10)
            worker.join(timeout=10)
            assert message.body == "later"
            assert swsync_outbox.get(message.sid)["timeline"][0]["state"] == "queued"
            with pytest.raises(TimeoutError):
                swsync_outbox.wait_for(to="+15550009999", timeout=0.2)
            swsync_outbox.clear()
            assert len(swsync_outbox) == 0
        """
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=3)


def test_outbox_reads_an_emulator_running_elsewhere() -> None:
    from swsync.emulator import Emulator
    from swsync.testing import Outbox

    with Emulator(state_delay=0.0) as emu:
        emu.add_messages(2, body="seeded {i}")
        outbox = Outbox(emu.rest_url, auth=(emu.project, emu.token))
        assert [m.body for m in outbox] == ["seeded 1", "seeded 0"]  # oldest first
        wrong = Outbox(emu.rest_url, auth=(emu.project, "not the token"))
        with pytest.raises(AssertionError, match="HTTP 401"):
            len(wrong)
