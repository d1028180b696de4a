"""The asyncio variants: wait_async, get_async, request_async (client, reference, connection)."""

import asyncio

import pytest

import hulynet
from helpers import TIMEOUTS, wait_for


def test_wait_async(server):
    async def main():
        with hulynet.Client("127.0.0.1", server.port, timeouts=TIMEOUTS) as client:
            await client.wait_async(timeout=5)
            return client.id

    assert asyncio.run(main())


def test_wait_async_times_out():
    port = hulynet.Server().port  # nothing listens there any more

    async def main():
        with hulynet.Client("127.0.0.1", port, timeouts=TIMEOUTS) as client:
            with pytest.raises(hulynet.Timeout):
                await client.wait_async(timeout=0.2)

    asyncio.run(main())


def test_get_and_requests_async(served):
    host, agent, user = served

    async def main():
        reference = await user.get_async("echo", uuid="async-1", labels=["a"], extra={"x": 1}, timeout=5)
        try:
            assert isinstance(reference, hulynet.Reference) and reference.uuid == "async-1"
            assert await user.request_async("async-1", "echo", {"v": [1, 2]}, timeout=2) == {"v": [1, 2]}
            assert await reference.request_async("echo", "ref") == "ref"
            with reference.connect() as connection:
                assert (await connection.request_async("whoami"))["client"] == user.id
                # Many at once, completed out of order on library threads.
                results = await asyncio.gather(*(connection.request_async("echo", i) for i in range(50)),
                                               *(user.request_async("async-1", "echo", -i) for i in range(50)))
                assert results == list(range(50)) + [-i for i in range(50)]
        finally:
            reference.close()

    asyncio.run(main())


def test_async_errors(served):
    host, agent, user = served

    async def main():
        with await user.get_async("echo") as reference:
            with pytest.raises(hulynet.RemoteError) as caught:
                await reference.request_async("fail", "async failure")
            assert caught.value.message == "async failure" and caught.value.code == -6
            with pytest.raises(hulynet.NotFound):
                await user.request_async("no-such-container", "echo")
            with reference.connect() as connection:
                with pytest.raises(hulynet.RemoteError):
                    await connection.request_async("fail")
                with pytest.raises(TypeError):
                    await connection.request_async("echo", object())
                with pytest.raises(hulynet.InvalidJSON):
                    await connection.request_async("echo", float("inf"))
            with pytest.raises(hulynet.RemoteError) as caught:
                await user.get_async("broken")
            assert "failed to start" in caught.value.message
        with pytest.raises(hulynet.InvalidArgument):  # labels must be strings: refused synchronously
            await user.get_async("echo", labels=[1])

    asyncio.run(main())


def test_async_timeouts_and_cancellation(served):
    host, agent, user = served

    async def main():
        with await user.get_async("slow") as reference, reference.connect() as connection:
            with pytest.raises(hulynet.Timeout):
                await reference.request_async("sleep", 1.0, timeout=0.2)
            with pytest.raises(hulynet.Timeout):
                await connection.request_async("sleep", 1.0, timeout=0.2)
            # Cancelled by asyncio: the late completion is dropped quietly.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(connection.request_async("sleep", 0.3), 0.05)
            assert await connection.request_async("sleep", 0.01) == "done"
            await asyncio.sleep(0.4)  # let the cancelled request complete while the loop still runs

    asyncio.run(main())


def test_cancelled_get_async_releases_its_late_reference(served, recorder):
    host, agent, user = served

    async def main():
        task = asyncio.ensure_future(user.get_async("echo", uuid="cancelled", extra={"start_delay": 0.2}))
        await asyncio.sleep(0.05)  # the get is under way in the library
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The get still completes in the library; its reference is closed, so the container stops.
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: wait_for(lambda: ("cancelled",) in recorder.of("terminate"), message="terminate"))

    asyncio.run(main())


def test_completion_after_the_loop_closed_is_harmless(served):
    host, agent, user = served
    reference = user.get("slow")
    before = len(hulynet._registry)

    async def main():
        asyncio.ensure_future(reference.request_async("sleep", 0.2))
        await asyncio.sleep(0)

    asyncio.run(main())  # returns at once: the request completes after the loop is closed
    wait_for(lambda: len(hulynet._registry) == before, message="the late completion")
    assert reference.request("sleep", 0.01) == "done"
    reference.close()


def test_async_on_closed_objects(served):
    host, agent, user = served

    async def main():
        reference = await user.get_async("echo")
        connection = reference.connect()
        connection.close()
        with pytest.raises(hulynet.Closed):
            await connection.request_async("echo")
        reference.close()
        with pytest.raises(hulynet.Closed):
            await reference.request_async("echo")
        user.close()
        for call in (lambda: user.get_async("echo"), lambda: user.request_async("x", "echo"),
                     lambda: user.wait_async()):
            with pytest.raises(hulynet.Closed):
                await call()

    asyncio.run(main())


def test_pending_async_request_fails_when_its_client_closes(served):
    host, agent, user = served

    async def main():
        reference = await user.get_async("slow")
        pending = asyncio.ensure_future(reference.request_async("sleep", 1.0))
        await asyncio.sleep(0.05)
        await asyncio.get_running_loop().run_in_executor(None, user.close)
        with pytest.raises(hulynet.Error) as caught:
            await asyncio.wait_for(pending, 5)
        assert isinstance(caught.value, (hulynet.Closed, hulynet.Timeout))

    asyncio.run(main())
