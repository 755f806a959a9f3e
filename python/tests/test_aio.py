"""The asyncio API over tcp:// and unix://: call, stream, task errors with
their code, deadline, cancellation through asyncio, and a connection cut
mid-task followed by resume (the task runs once, its answer arrives once)."""

import asyncio
import os
import ssl
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import symwire  # noqa: E402


class AgentFixture:
    def __init__(self):
        self.agent = symwire.Agent("py-agent")
        self.cancelled = asyncio.Event()
        self.release = asyncio.Event()
        self.runs = []
        self.agent.handler(self.handle)

    async def handle(self, task):
        self.runs.append(task.payload)
        try:
            if task.payload == b"slow":
                await asyncio.sleep(30)
            if task.payload == b"wait":
                await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        if task.payload == b"fail":
            raise symwire.SymwireError(3, "INVALID_ARGUMENT", "bad input")
        yield b"working on " + task.payload
        yield b"done"

    async def start(self, url):
        ready = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(self.agent.serve(url, ready=ready.set_result))
        return await asyncio.wait_for(ready, 5)


class AioTest(unittest.IsolatedAsyncioTestCase):
    async def conversation(self, url):
        fx = AgentFixture()
        url = await fx.start(url)
        try:
            async with symwire.connect(url, timeout=5) as client:
                self.assertEqual(await client.call(b"x", timeout=5), b"working on xdone")
                self.assertEqual([p async for p in client.stream(b"y")],
                                 [b"working on y", b"done"])
                with self.assertRaises(symwire.SymwireError) as err:
                    await client.call(b"fail", timeout=5)
                self.assertEqual((err.exception.code, err.exception.message),
                                 (3, "bad input"))
                with self.assertRaises(symwire.SymwireError) as err:
                    await client.call(b"slow", timeout=0.2)
                self.assertEqual(err.exception.code, 4)
                t = asyncio.create_task(client.call(b"wait"))
                while b"wait" not in fx.runs:
                    await asyncio.sleep(0.01)
                t.cancel()
                with self.assertRaises(asyncio.CancelledError):
                    await t
                await asyncio.wait_for(fx.cancelled.wait(), 5)
        finally:
            fx.task.cancel()

    async def test_tcp(self):
        await asyncio.wait_for(self.conversation("tcp://127.0.0.1:0"), 15)

    async def test_unix(self):
        with tempfile.TemporaryDirectory() as d:
            await asyncio.wait_for(self.conversation("unix://" + os.path.join(d, "s")), 15)

    async def test_tls(self):
        with tempfile.TemporaryDirectory() as d:
            cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                            "-keyout", key, "-out", cert], check=True, capture_output=True,
                           timeout=30)
            server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            server_ctx.load_cert_chain(cert, key)
            client_ctx = ssl.create_default_context(cafile=cert)   # verifies chain and IP
            fx = AgentFixture()
            ready = asyncio.get_running_loop().create_future()
            fx.task = asyncio.create_task(fx.agent.serve(
                "tls://127.0.0.1:0", ssl_context=server_ctx, ready=ready.set_result))
            try:
                url = await asyncio.wait_for(ready, 5)
                async with symwire.connect(url, ssl_context=client_ctx, timeout=5) as client:
                    self.assertEqual(await client.call(b"t", timeout=5), b"working on tdone")
            finally:
                fx.task.cancel()

    async def test_stdio(self):
        child = ("stdio:%s %s" % (sys.executable, os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "stdio_agent.py")))
        async with symwire.connect(child, timeout=10) as client:
            self.assertEqual([p async for p in client.stream(b"s", timeout=5)],
                             [b"stdio: s", b"done"])
            proc = client.writer.proc
        # After the bye the agent exits by itself (not terminated 2 s later).
        self.assertEqual(proc.returncode, 0)

    async def test_resume_after_cut(self):
        fx = AgentFixture()
        url = await fx.start("tcp://127.0.0.1:0")
        try:
            async with symwire.connect(url, timeout=5) as client:
                t = asyncio.create_task(client.call(b"wait", timeout=10))
                while b"wait" not in fx.runs:
                    await asyncio.sleep(0.01)
                client.writer.transport.abort()          # the connection is cut
                while client.session.up:
                    await asyncio.sleep(0.01)
                fx.release.set()
                self.assertEqual(await asyncio.wait_for(t, 10), b"working on waitdone")
                self.assertEqual(fx.runs, [b"wait"])
                resumed = client.session.events
                self.assertTrue(any("resumed=1" in e for e in resumed), resumed)
        finally:
            fx.task.cancel()


class MethodsTest(unittest.IsolatedAsyncioTestCase):
    """Methods (SPEC.md §5.1, §13.5, §13.6): routing, UNIMPLEMENTED for an
    unknown method, the built-in health method, the local refusals."""

    async def serve(self, agent):
        ready = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(agent.serve("tcp://127.0.0.1:0", ready=ready.set_result))
        self.addCleanup(task.cancel)
        return await asyncio.wait_for(ready, 5)

    async def test_methods(self):
        agent = symwire.Agent("py-agent")
        seen = []

        @agent.method("text.upper")
        async def upper(task):
            seen.append(task.method)
            yield task.payload.upper()

        @agent.method("summarize")
        async def summarize(task):
            seen.append(task.method)
            yield b"summary of "
            yield task.payload

        @agent.handler
        async def plain(task):
            seen.append(task.method)
            yield b"plain " + task.payload
        url = await self.serve(agent)
        async with symwire.connect(url, timeout=5) as client:
            self.assertEqual(await client.call("summarize", b"abc", timeout=2.0),
                             b"summary of abc")
            self.assertEqual([p async for p in client.stream("text.upper", b"hi")], [b"HI"])
            self.assertEqual(await client.call(b"x"), b"plain x")
            self.assertEqual(await client.call(b"y", method="text.upper"), b"Y")
            self.assertEqual(seen, ["summarize", "text.upper", None, "text.upper"])
            with self.assertRaises(symwire.SymwireError) as err:
                await client.call("text.translate", b"hello", timeout=2.0)
            e = err.exception
            self.assertEqual((e.code, e.symwire_code, e.name, e.retryable, e.message),
                             (12, 127, "UNIMPLEMENTED", True, 'unknown method "text.translate"'))
            self.assertEqual(len(seen), 4)          # nothing ran for it
            self.assertEqual(await client.check_health(timeout=2.0), symwire.SERVING)
            agent.set_serving_status(symwire.NOT_SERVING)
            self.assertEqual(await client.check_health(), symwire.NOT_SERVING)
            # Local refusal: a bad name is never sent (INVALID_FRAME, 19).
            with self.assertRaises(symwire.SymwireError) as err:
                await client.call("has space", b"")
            self.assertEqual((err.exception.code, err.exception.symwire_code), (3, 19))
            self.assertEqual(client.session.tasks, {})

    async def test_no_task_handler(self):
        agent = symwire.Agent("py-agent")

        @agent.method("m")
        async def m(task):
            yield b"m"
        url = await self.serve(agent)
        async with symwire.connect(url, timeout=5) as client:
            with self.assertRaises(symwire.SymwireError) as err:
                await client.call(b"no method")
            self.assertEqual((err.exception.code, err.exception.symwire_code,
                              err.exception.message), (12, 127, "no task handler"))

    async def test_peer_without_methods_refused_locally(self):
        agent = symwire.Agent(config=symwire.Config(agent_id="old-agent", role=1,
                                                    capabilities=0))

        @agent.handler
        async def plain(task):
            yield b"ok"
        url = await self.serve(agent)
        async with symwire.connect(url, timeout=5) as client:
            with self.assertRaises(symwire.SymwireError) as err:
                await client.call("summarize", b"x")
            self.assertEqual((err.exception.code, err.exception.symwire_code), (12, 127))
            self.assertIn("old-agent", err.exception.message)
            self.assertEqual(client.session.next_task, 1)     # nothing was submitted
            self.assertEqual(await client.call(b"x"), b"ok")

    async def test_shutdown_drains(self):
        agent = symwire.Agent("py-agent")
        release = asyncio.Event()
        started = asyncio.Event()

        @agent.method("slow")
        async def slow(task):
            started.set()
            await release.wait()
            yield b"finished"
        ready = asyncio.get_running_loop().create_future()
        serving = asyncio.create_task(agent.serve("tcp://127.0.0.1:0",
                                                  ready=ready.set_result))
        url = await asyncio.wait_for(ready, 5)
        client = await symwire.connect(url, timeout=5)
        running = asyncio.create_task(client.call("slow", b"", timeout=10))
        await asyncio.wait_for(started.wait(), 5)
        self.assertEqual(await client.check_health(timeout=5), symwire.SERVING)
        down = asyncio.create_task(agent.shutdown(timeout=10))
        await asyncio.wait_for(serving, 5)           # the listener closes at once
        while not client.session.peer_draining:      # the drain reaches the client
            await asyncio.sleep(0.01)
        with self.assertRaises(symwire.SymwireError) as err:
            await client.call("slow", b"")
        self.assertEqual(err.exception.name, "PEER_DRAINING")
        release.set()                                # the running task finishes
        self.assertEqual(await asyncio.wait_for(running, 5), b"finished")
        await asyncio.wait_for(down, 10)
        await asyncio.wait_for(client.closed.wait(), 5)
        self.assertEqual(client.session.state, "closed")
        self.assertEqual(agent.drivers, {})
        await client.aclose()

    async def test_calls_wait_for_credit(self):
        agent = symwire.Agent(config=symwire.Config(agent_id="small", role=1, max_tasks=2))
        release = asyncio.Event()
        running = []

        @agent.method("gated")
        async def gated(task):
            running.append(task.payload)
            await release.wait()
            yield task.payload
        url = await self.serve(agent)
        async with symwire.connect(url, timeout=5) as client:
            calls = [asyncio.create_task(client.call("gated", b"%d" % k, timeout=10))
                     for k in range(6)]
            await asyncio.wait_for(self._until(lambda: len(running) == 2), 5)
            self.assertEqual(len(client.session.tasks), 2)     # the rest wait for credit
            with self.assertRaises(symwire.SymwireError) as err:
                await client.call("gated", b"late", timeout=0.05)
            self.assertEqual(err.exception.name, "DEADLINE_EXCEEDED")
            release.set()
            got = await asyncio.wait_for(asyncio.gather(*calls), 10)
            self.assertEqual(got, [b"%d" % k for k in range(6)])

    async def test_back_pressure_on_unread_responses(self):
        agent = symwire.Agent("py-agent")

        @agent.method("flood")
        async def flood(task):
            for k in range(300):
                yield b"%04d" % k + bytes(1020)
        url = await self.serve(agent)
        limit = 16 << 10
        async with symwire.connect(url, timeout=5, max_unread_response_bytes=limit) as client:
            parts = client.stream("flood", b"", timeout=10)
            got = [await parts.__anext__()]
            # Nobody takes the rest: the client stops reading above the limit.
            await asyncio.wait_for(self._until(lambda: not client.readable.is_set()), 5)
            held = client.unread
            self.assertGreater(held, limit)
            self.assertLess(held, limit + (64 << 10) + 1024)   # one read past it at most
            got += [p async for p in parts]
            self.assertEqual([p[:4] for p in got], [b"%04d" % k for k in range(300)])
            self.assertEqual(client.unread, 0)

    @staticmethod
    async def _until(cond):
        while not cond():
            await asyncio.sleep(0.01)

    def test_registration_errors(self):
        agent = symwire.Agent()
        agent.method("a")(lambda t: None)
        for bad in ("a", "symwire.health", "symwire.other", "", "x y", "é", "~" * 256):
            with self.subTest(name=bad), self.assertRaises(ValueError):
                agent.method(bad)


if __name__ == "__main__":
    unittest.main()
