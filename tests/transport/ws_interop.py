#!/usr/bin/env python3
"""WebSocket interop test (issue #17, SPEC.md §20.1).

Drives symwire's WebSocket server (examples/ws_agent --serve) from an
independent WebSocket client, Python's `websockets` (Debian:
python3-websockets), with the repository's Python reference session
(python/symwire, written from SPEC.md and not from the C++ code) doing
the symwire handshake and one task over it:

  1. the upgrade selects subprotocol symwire.v1, with no extension;
  2. the reference initiator's preface and HELLO go out split across many
     small messages (a frame spanning messages, SPEC.md §20.1), the
     server's bytes are fed to the model as they come, whatever the split;
  3. the session is established, a task "interop" gets the agent's answer
     ("working on interop", then FINAL "done: interop"), checked by the
     model as it decodes every frame;
  4. a ping is answered, a close (1000) answered with 1000;
  5. a text message is closed with 1003; an upgrade without symwire.v1 is
     refused with HTTP 400, one on another path with 404.

Usage: ws_interop.py PATH_TO_ws_agent. Prints "interop ok" and exits 0 on
success; any failure raises (exit status 1). Every wait is bounded.
"""

import asyncio
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "python"))

import websockets  # noqa: E402  Debian: python3-websockets
import symwire.vectors as ref  # noqa: E402

TIMEOUT = 10.0


def frames_bytes(frames):
    return b"".join(b for _title, segs in frames for b, _comment in segs)


async def send_split(ws, data, piece):
    """Sends `data` as messages of at most `piece` bytes."""
    for i in range(0, len(data), piece):
        await ws.send(data[i:i + piece])


async def pump_until(ws, session, done):
    """Feeds the server's messages to the model, sending what it answers,
    until done() holds."""
    while not done():
        msg = await asyncio.wait_for(ws.recv(), TIMEOUT)
        if not isinstance(msg, bytes):
            raise AssertionError("the server sent a text message: %r" % msg)
        out = session.receive(msg)
        if out:
            await send_split(ws, frames_bytes(out), 5)


async def interop(url):
    base = url.rsplit("/", 1)[0]
    async with websockets.connect(url, subprotocols=["symwire.v1"], compression=None,
                                  open_timeout=TIMEOUT, close_timeout=2) as ws:
        assert ws.subprotocol == "symwire.v1", ws.subprotocol
        assert ws.response_headers.get("Sec-WebSocket-Extensions") is None

        # The reference initiator: no auth, orchestrator role (the agent's
        # role is agent), defaults of the golden transcripts.
        cfg = ref._transcript_base("initiator", seed=7, agent_id="py-orchestrator")
        session = ref.RefSession("initiator", cfg)
        # Preface and HELLO in 3-byte messages: every frame spans messages.
        await send_split(ws, frames_bytes(session.connect()), 3)
        await pump_until(ws, session, lambda: session.state == "established")
        assert any("type=Established" in e for e in session.events), \
            session.events

        task, frames = session.submit(b"interop")
        await ws.send(frames_bytes(frames))  # one message
        await pump_until(ws, session, lambda: task not in session.tasks)
        answers = [e for e in session.events if "type=ResponseReceived task=%d" % task in e]
        want = [("final=0", ref.hexs(b"working on interop")),
                ("final=1", ref.hexs(b"done: interop"))]
        assert len(answers) == 2, session.events
        for line, (final, payload) in zip(answers, want):
            assert final in line and ("payload=" + payload) in line, (line, payload)

        # A ping is answered with its payload (RFC 6455 §5.5.2), and our close
        # frame with 1000 (SPEC.md §20.1).
        pong = await ws.ping(b"interop")
        await asyncio.wait_for(pong, TIMEOUT)
        await asyncio.wait_for(ws.close(), TIMEOUT)
        assert ws.close_code == 1000, ws.close_code

    # A text message: closed with 1003 (unsupported data).
    async with websockets.connect(url, subprotocols=["symwire.v1"], compression=None,
                                  open_timeout=TIMEOUT, close_timeout=2) as ws:
        await ws.send("hello")
        try:
            while True:  # the server's preface may come first
                msg = await asyncio.wait_for(ws.recv(), TIMEOUT)
                assert isinstance(msg, bytes), msg
        except websockets.exceptions.ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1003, closed

    # No subprotocol: 400; another path: 404.
    for target, subprotocols, status in ((url, None, 400),
                                         (base + "/elsewhere", ["symwire.v1"], 404)):
        try:
            async with websockets.connect(target, subprotocols=subprotocols,
                                          compression=None, open_timeout=TIMEOUT):
                raise AssertionError("upgrade to %s accepted" % target)
        except websockets.exceptions.InvalidStatusCode as refused:
            assert refused.status_code == status, (target, refused.status_code)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: ws_interop.py PATH_TO_ws_agent")
    agent = subprocess.Popen([sys.argv[1], "--serve"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        line = agent.stdout.readline().strip()
        if not line.startswith("listening ws://"):
            raise AssertionError("ws_agent said %r" % line)
        url = line.split(" ", 1)[1]
        asyncio.run(asyncio.wait_for(interop(url), 4 * TIMEOUT))
    finally:
        agent.stdin.close()  # the agent stops when its stdin closes
        try:
            agent.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
    if agent.returncode != 0:
        raise AssertionError("ws_agent exited with %d" % agent.returncode)
    print("interop ok")


if __name__ == "__main__":
    main()
