"""Container kinds and helpers shared by the tests."""

import concurrent.futures
import threading
import time

import hulynet

# Short timeouts keep the suite fast; request 3 s bounds every call that could hang.
TIMEOUTS = hulynet.Timeouts(alive=1.0, unused_container=0.3, ping_interval=0.2, request=3.0)


def wait_for(condition, timeout=5.0, message="condition"):
    """Polls `condition` until it is true, at most `timeout` seconds (then fails)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(0.01)


class Recorder:
    """What the test containers saw, shared with the tests."""

    lock = threading.Lock()
    events = []
    probe_client = None
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=4)

    @classmethod
    def reset(cls):
        with cls.lock:
            cls.events = []
        cls.probe_client = None

    @classmethod
    def add(cls, *event):
        with cls.lock:
            cls.events.append(event)

    @classmethod
    def of(cls, name):
        with cls.lock:
            return [event[1:] for event in cls.events if event[0] == name]


class Echo(hulynet.Container):
    """Answers with what it is asked; a few operations exercise the binding."""

    kind = "echo"

    def __init__(self, uuid, options):
        self.options = options
        Recorder.add("start", self.kind, uuid, options)
        delay = (options.get("extra") or {}).get("start_delay")
        if delay:  # a slow start, for tests that act while a get is under way
            time.sleep(delay)

    def request(self, operation, data, client_id):
        Recorder.add("request", self.uuid, operation, client_id)
        if operation == "echo":
            return data
        if operation == "whoami":
            return {"uuid": self.uuid, "client": client_id, "options": self.options}
        if operation == "fail":
            raise ValueError(data or "deliberate failure")
        if operation == "unserialisable":
            return {"value": object()}
        if operation == "nan":
            return float("nan")
        if operation == "emit":
            return self.emit(data.get("event"), data.get("to"))
        if operation == "blocking":
            try:
                Recorder.probe_client.kinds(timeout=0.5)
            except hulynet.Error as error:
                return {"error": type(error).__name__, "code": error.code, "message": error.message}
            return {"error": None}
        if operation == "later":
            return Recorder.executor.submit(lambda: (time.sleep(0.05), data)[1])
        if operation == "later_fail":
            def fail():
                time.sleep(0.05)
                raise RuntimeError("late failure")
            return Recorder.executor.submit(fail)
        raise NotImplementedError(f"unknown operation {operation}")

    def connect(self, client_id):
        Recorder.add("connect", self.uuid, client_id)

    def disconnect(self, client_id):
        Recorder.add("disconnect", self.uuid, client_id)

    def terminate(self):
        Recorder.add("terminate", self.uuid)


class Chat(hulynet.Container):
    """A room: welcomes who connects, broadcasts what is said."""

    kind = "chat"

    def __init__(self, uuid, options):
        self.members = set()

    def connect(self, client_id):
        self.members.add(client_id)
        self.emit({"type": "welcome", "you": client_id}, client_id)

    def disconnect(self, client_id):
        self.members.discard(client_id)
        self.emit({"type": "left", "who": client_id})

    def request(self, operation, data, client_id):
        if operation == "say":
            return self.emit({"type": "message", "from": client_id, "text": data})
        if operation == "members":
            return sorted(self.members)
        raise NotImplementedError(operation)

    def terminate(self):
        Recorder.add("terminate", self.uuid)


class Slow(hulynet.Container):
    """Answers after `data` seconds, on a worker thread (a deferred answer)."""

    kind = "slow"

    def request(self, operation, data, client_id):
        return Recorder.executor.submit(lambda: (time.sleep(float(data)), "done")[1])


class Broken(hulynet.Container):
    """Fails to start; its callbacks raise."""

    kind = "broken"

    def __init__(self, uuid, options):
        if (options.get("extra") or {}).get("start") != "ok":
            raise RuntimeError("broken cannot start")

    def request(self, operation, data, client_id):
        return "ok"

    def connect(self, client_id):
        raise RuntimeError("connect raised")

    def disconnect(self, client_id):
        raise RuntimeError("disconnect raised")

    def terminate(self):
        Recorder.add("terminate", self.uuid)
        raise RuntimeError("terminate raised")
