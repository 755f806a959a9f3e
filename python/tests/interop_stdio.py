"""Interop: a Python orchestrator drives the C++ agent examples/stdio_agent
over its stdin/stdout: a streamed task, a cancel through asyncio task
cancellation (the agent logs it), deadline expiry on both sides, a task the
agent rejects (INVALID_ARGUMENT, code 3), a method call ("text.upper"), an
unknown method (UNIMPLEMENTED: code 12, symwire code 127), the health method
(SERVING), a graceful close (the agent exits 0).

Usage: interop_stdio.py PATH_TO_stdio_agent [none|token|hmac]: the
authentication method of both ends (the agent gets it through
SYMWIRE_STDIO_AUTH). Prints "interop ok"; any failure raises (exit status 1).
Every wait is bounded.
"""

import asyncio
import os
import shlex
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import symwire  # noqa: E402

TIMEOUT = 10.0


async def wait_for_log(path: str, text: str) -> None:
    for _ in range(int(TIMEOUT * 50)):
        if text in open(path).read():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("%r not in the agent's log: %r" % (text, open(path).read()))


async def interop(agent_path: str, log: str, auth: str) -> None:
    secret = b"interop-secret-0123456789abcdef" if auth != "none" else b""
    env = "SYMWIRE_STDIO_AUTH=%s:%s " % (auth, secret.decode()) if secret else ""
    url = "stdio:/bin/sh -c %s" % shlex.quote("%sexec %s 2>%s" % (
        env, shlex.quote(agent_path), shlex.quote(log)))
    async with symwire.connect(url, timeout=TIMEOUT, auth=auth, secret=secret) as client:
        assert client.session.cfg["auth"] == symwire.session.AUTH_METHODS[auth]
        print("ok   established with auth", auth)
        parts = [p async for p in client.stream(b"stream 5", timeout=TIMEOUT)]
        assert parts == [b"1 ", b"2 ", b"3 ", b"4 ", b"5 ", b"done"], parts
        print("ok   stream 5 ->", b"".join(parts))

        got = []

        async def slow():
            async for p in client.stream(b"slow 100", timeout=TIMEOUT):
                got.append(p)
        t = asyncio.create_task(slow())
        while not got:
            await asyncio.sleep(0.01)
        t.cancel()
        try:
            await t
            raise AssertionError("slow 100 was not cancelled")
        except asyncio.CancelledError:
            pass
        await wait_for_log(log, "cancelled")
        print("ok   slow 100 cancelled after", len(got), "part(s); the agent logged it")

        try:
            await client.call(b"slow 100", timeout=0.1)
            raise AssertionError("slow 100 met its 100 ms deadline")
        except symwire.SymwireError as err:
            assert err.code == 4, err
            print("ok   slow 100 with a 100 ms deadline ->", err.name)

        try:
            await client.call(b"bogus", timeout=TIMEOUT)
            raise AssertionError("bogus accepted")
        except symwire.SymwireError as err:
            assert err.code == 3, err
            print("ok   bogus ->", err.name, err.message)

        assert await client.call("text.upper", b"hello", timeout=TIMEOUT) == b"HELLO"
        print("ok   text.upper(hello) -> HELLO")
        try:
            await client.call("text.translate", b"hello", timeout=TIMEOUT)
            raise AssertionError("text.translate accepted")
        except symwire.SymwireError as err:
            assert (err.code, err.symwire_code, err.retryable) == (12, 127, True), err
            assert err.message == 'unknown method "text.translate"', err.message
            print("ok   text.translate ->", err.name, err.message)
        assert await client.check_health(timeout=TIMEOUT) == symwire.SERVING
        print("ok   health -> SERVING")
        proc = client.writer.proc
    # Graceful close: bye both ways, then the agent exits on its own.
    status = await asyncio.wait_for(proc.wait(), TIMEOUT)
    assert client.session.state == "closed", client.session.state
    print("ok   close; agent exit status", status)


def main(argv):
    with tempfile.TemporaryDirectory() as d:
        log = os.path.join(d, "agent.log")
        open(log, "w").close()
        auth = argv[2] if len(argv) > 2 else "none"
        asyncio.run(asyncio.wait_for(interop(argv[1], log, auth), 3 * TIMEOUT))
    print("interop ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
