"""Example 5: error handling and retries (after huly.net's examples/05-error-handling-retry.ts).

An "unreliable-service" container fails some requests and answers others slowly. The client side
shows the usual patterns with hulynet's exceptions: retry with exponential backoff on RemoteError,
a per-request timeout (hulynet.Timeout), concurrent requests with asyncio, graceful degradation
to a fallback, and a circuit breaker.

The failures follow a seeded pattern (only the concurrent part varies with thread timing); the
delays are short, so it finishes in a few seconds.

    python3 examples/05_error_handling_retry.py

Starts its own coordinator on 127.0.0.1 (a free port) and exits 0 when every pattern behaved as
expected.
"""

import asyncio
import concurrent.futures
import random
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

try:
    import hulynet
except ModuleNotFoundError:  # run from the source tree without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import hulynet

# Slow answers are computed on these threads: a container must not hold a library thread while it
# waits, so it returns a Future and hulynet answers when it completes.
workers = concurrent.futures.ThreadPoolExecutor(max_workers=8)


class UnreliableService(hulynet.Container):
    kind = "unreliable-service"

    def __init__(self, uuid, options):
        self.calls = 0
        self.lock = threading.Lock()
        self.random = random.Random((options.get("extra") or {}).get("seed", 7))
        self.failure_rate = (options.get("extra") or {}).get("failureRate", 0.3)
        print(f"[UnreliableService] container {uuid} created")

    def request(self, operation, data, client_id):
        with self.lock:
            self.calls += 1
            call = self.calls
            fails = self.random.random() < self.failure_rate
            slow = self.random.random() > 0.7
        if operation == "slow":
            slow, fails = True, False
        if fails:
            raise RuntimeError(f"Service temporarily unavailable (call {call})")
        delay = 0.4 if slow else 0.01

        def answer():
            time.sleep(delay)
            value = (data or {}).get("value")
            return {"success": True, "operation": operation, "callNumber": call,
                    "data": value * 2 if value is not None else None}

        return workers.submit(answer)

    def terminate(self):
        print(f"[UnreliableService] terminated after {self.calls} calls")


def retry_with_backoff(operation, max_retries=3, initial_delay=0.02, max_delay=0.2):
    last_error = None
    for attempt in range(1, max_retries + 1):
        try:
            result = operation()
            print(f"  attempt {attempt}/{max_retries}: success")
            return result
        except hulynet.Error as error:  # RemoteError from the service, Timeout, ...
            last_error = error
            print(f"  attempt {attempt}/{max_retries} failed: {type(error).__name__}: {error}")
            if attempt < max_retries:
                time.sleep(min(initial_delay * 2 ** (attempt - 1), max_delay))
    raise RuntimeError(f"operation failed after {max_retries} attempts: {last_error}")


def robust_call(client, operation, data, max_retries=3, seed=7, failure_rate=0.3):
    """Get the container, run the operation with retries, and always release the container."""
    reference = retry_with_backoff(
        lambda: client.get("unreliable-service", labels=[f"seed-{seed}"],
                           extra={"seed": seed, "failureRate": failure_rate}, timeout=5), max_retries)
    with reference:
        return retry_with_backoff(lambda: reference.request(operation, data, timeout=1.0), max_retries)


class CircuitBreaker:
    def __init__(self, failure_threshold=2, reset_timeout=0.3):
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.failures = 0
        self.last_failure = 0.0
        self.state = "closed"

    def execute(self, operation):
        if self.state == "open":
            if time.monotonic() - self.last_failure > self.reset_timeout:
                print("  [CircuitBreaker] half-open: trying again")
                self.state = "half-open"
            else:
                raise RuntimeError("circuit breaker is OPEN: service unavailable")
        try:
            result = operation()
        except Exception:
            self.failures += 1
            self.last_failure = time.monotonic()
            if self.failures >= self.failure_threshold:
                print(f"  [CircuitBreaker] OPEN after {self.failures} failures")
                self.state = "open"
            raise
        if self.state == "half-open":
            print("  [CircuitBreaker] closed: service recovered")
        self.failures, self.state = 0, "closed"
        return result


async def concurrent_requests(client):
    """Five requests at once with asyncio, each retried on its own."""
    async def one(index):
        reference = await client.get_async("unreliable-service", labels=["seed-11"], extra={"seed": 11})
        try:
            for attempt in range(1, 4):
                try:
                    return {"success": True,
                            "result": await reference.request_async("process", {"value": index}, timeout=1.0)}
                except hulynet.Error as error:
                    if attempt == 3:
                        return {"success": False, "error": str(error)}
                    await asyncio.sleep(0.02 * 2 ** (attempt - 1))
        finally:
            reference.close()

    return await asyncio.gather(*(one(i + 1) for i in range(5)))


def main():
    print("=== Error handling and retry logic ===\n")
    with ExitStack() as stack:  # closes in reverse: client, agent, server
        server = stack.enter_context(hulynet.Server("127.0.0.1", 0))
        agent = stack.enter_context(hulynet.Agent([UnreliableService], uuid="unreliable-agent"))
        client = stack.enter_context(hulynet.Client("127.0.0.1", server.port))
        try:
            client.wait(timeout=5)
        except hulynet.Timeout as error:
            print("failed to connect:", error)
            raise
        client.serve_agent(agent)
        print(f"coordinator on port {server.port}, agent served\n")

        print("=== test 1: retry with backoff ===")
        result = robust_call(client, "process", {"value": 42})
        print("final result:", result)
        assert result["data"] == 84

        print("\n=== test 2: concurrent requests with asyncio ===")
        results = asyncio.run(concurrent_requests(client))
        for index, outcome in enumerate(results, 1):
            print(f"request {index}:", "success -" if outcome["success"] else "failed -",
                  outcome.get("result", outcome.get("error")))
        assert any(outcome["success"] for outcome in results)

        print("\n=== test 3: timeout handling ===")
        timeouts = 0
        with client.get("unreliable-service", labels=["always-slow"], extra={"failureRate": 0}) as reference:
            for i in range(3):
                try:
                    print(f"request {i + 1} with a 0.1 s timeout...")
                    print("  completed:", reference.request("slow", {"value": i}, timeout=0.1))
                except hulynet.Timeout as error:
                    timeouts += 1
                    print(f"  timed out ({error.message})")
            # With enough time the same request succeeds.
            print("  with 2 s:", reference.request("slow", {"value": 5}, timeout=2.0))
        assert timeouts == 3

        print("\n=== test 4: graceful degradation ===")
        sources = []
        for i in range(3):
            try:
                data = {"source": "primary", "data": robust_call(client, "process", {"value": i + 1}, max_retries=2,
                                                                  seed=100 + i, failure_rate=0.6)}
            except RuntimeError:
                print("primary service failed, using the fallback")
                data = {"source": "fallback", "data": {"success": True, "value": i + 1, "cached": True}}
            sources.append(data["source"])
            print(f"data {i + 1}: from {data['source']} - {data['data']}")

        print("\n=== test 5: circuit breaker ===")
        breaker = CircuitBreaker(failure_threshold=2, reset_timeout=0.3)
        outcomes = []
        for i in range(6):
            try:
                value = breaker.execute(lambda: robust_call(client, "process", {"value": i}, max_retries=1,
                                                            seed=200, failure_rate=0.7))
                outcomes.append("ok")
                print(f"request {i + 1}: ok -", value)
            except RuntimeError as error:
                outcomes.append("open" if "OPEN" in str(error) else "failed")
                print(f"request {i + 1}: {error}")
            print("  breaker:", {"state": breaker.state, "failures": breaker.failures})
            time.sleep(0.1)
        assert "open" in outcomes, outcomes

    workers.shutdown()
    print("\nexample completed successfully")
    print("patterns shown: exponential backoff, timeouts, asyncio concurrency, graceful degradation, "
          "circuit breaker, cleanup with context managers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
