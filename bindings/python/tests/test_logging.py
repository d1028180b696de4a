"""hulynet.set_log_handler and the forwarder to the logging module."""

import logging
import threading

import pytest

import hulynet
from helpers import TIMEOUTS, wait_for


@pytest.fixture(autouse=True)
def default_log_handler():
    yield
    hulynet.set_log_handler(None)


def _make_some_logs():
    """A server and a client: the library logs at debug level (connections, hello)."""
    with hulynet.Server(timeouts=TIMEOUTS) as server:
        with hulynet.Client("127.0.0.1", server.port, timeouts=TIMEOUTS) as client:
            client.wait(timeout=5)
            client.kinds()


def test_set_log_handler_receives_messages():
    messages = []
    lock = threading.Lock()

    def handler(level, message):
        with lock:
            messages.append((level, message))

    hulynet.set_log_handler(handler, hulynet.LOG_TRACE)
    _make_some_logs()
    wait_for(lambda: messages, message="a log message")
    with lock:
        assert all(hulynet.LOG_TRACE <= level <= hulynet.LOG_CRITICAL for level, _ in messages)
        assert all(isinstance(message, str) and message.startswith("[hulynet") for _, message in messages)
    hulynet.set_log_handler(None)
    with lock:
        count = len(messages)
    _make_some_logs()
    with lock:
        assert len(messages) == count  # back to the default: nothing reaches the handler


def test_level_filters():
    levels = []
    hulynet.set_log_handler(lambda level, message: levels.append(level), hulynet.LOG_ERROR)
    _make_some_logs()
    assert all(level >= hulynet.LOG_ERROR for level in levels)


def test_bad_level_and_handler():
    with pytest.raises(hulynet.InvalidArgument) as caught:
        hulynet.set_log_handler(print, 7)
    assert "min_level" in caught.value.message
    with pytest.raises(hulynet.InvalidArgument):
        hulynet.set_log_handler(None, -1)
    with pytest.raises(hulynet.InvalidArgument):  # would wrap to LOG_INFO in a C int
        hulynet.set_log_handler(print, 2**32 + 2)
    with pytest.raises(TypeError):
        hulynet.set_log_handler("print")


def test_a_raising_handler_is_harmless():
    calls = []

    def handler(level, message):
        calls.append(level)
        raise RuntimeError("a broken log handler")

    hulynet.set_log_handler(handler, hulynet.LOG_TRACE)
    _make_some_logs()
    assert calls


def test_log_to_logging(caplog):
    with caplog.at_level(logging.DEBUG, logger="hulynet"):
        hulynet.log_to_logging(logging.DEBUG)
        _make_some_logs()
        wait_for(lambda: any(r.name.startswith("hulynet.") for r in caplog.records), message="forwarded records")
    names = {r.name for r in caplog.records}
    assert names & {"hulynet.server", "hulynet.client"}
    record = next(r for r in caplog.records if r.name in ("hulynet.server", "hulynet.client"))
    assert not record.getMessage().startswith("[")  # the label became the logger's name
    assert all(isinstance(getattr(r, "hulynet", None), dict) for r in caplog.records if r.name.startswith("hulynet."))


def test_log_to_logging_gives_fields_apart(caplog):
    """The coordinator's "agent registered" carries the agent's uuid as a field, not as text."""
    with caplog.at_level(logging.INFO, logger="hulynet"):
        hulynet.log_to_logging(logging.INFO)
        with hulynet.Server(timeouts=TIMEOUTS) as server:
            with hulynet.Client("127.0.0.1", server.port, timeouts=TIMEOUTS) as host:
                host.wait(timeout=5)
                agent = hulynet.Agent([EchoForLogs])
                host.serve_agent(agent, timeout=5)
                wait_for(lambda: any(r.getMessage() == "agent registered" for r in caplog.records),
                         message="the agent's registration logged")
                record = next(r for r in caplog.records if r.getMessage() == "agent registered")
                assert record.hulynet["agent"] == agent.uuid
                assert "kinds" in record.hulynet
                agent.close()
    hulynet.set_log_handler(None)


class EchoForLogs(hulynet.Container):
    kind = "echo-logs"

    def request(self, operation, data, client_id):
        return data
