"""Interop of python/symwire with the C++ runtime, both directions, through
the C++ fault proxy (symwire-soak --role proxy) that kills connections and
flips bits so that both sides resume (SPEC.md §7, §16).

  agent:        the C++ orchestrator (symwire-soak --role client) drives a
                Python agent that answers the soak workload (3 partials and a
                final per task, payloads sealed with FNV-1a; tools/soak.cpp);
  orchestrator: a Python orchestrator drives the C++ agent (symwire-soak
                --role server) with the same workload and checks every part
                exactly once and in order, then closes; the server must end
                its session cleanly with no violation.

Usage: interop_soak.py PATH_TO_symwire-soak {agent|orchestrator}. Prints
"interop ok" on success; any failure raises (exit status 1). Every wait is
bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import symwire  # noqa: E402

TIMEOUT = 20.0
TASKS = 120
FILLER = 32
PARTIAL = 0xFFFFFFFF
# Connections killed every 3-9 ms and 300 bit flips per million bytes: a
# flipped frame fails its CRC, which ends the connection, not the session
# (SPEC.md §7, §16.1), so both sides resume. INTEROP_FAULTS overrides it.
FAULTS = os.environ.get("INTEROP_FAULTS", "kill=3000:9000,flip=300")


def fnv1a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for x in data:
        h = ((h ^ x) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def filler(index: int, part: int, n: int) -> bytes:
    return bytes((index * 131 + part * 29 + k * 7) & 0xFF for k in range(n))


def seal(body: bytes) -> bytes:
    return body + struct.pack(">Q", fnv1a(body))


def task_payload(index: int) -> bytes:
    return seal(struct.pack(">QI", index, FILLER) + filler(index, 0, FILLER))


def response_payload(index: int, part: int, marker: int) -> bytes:
    return seal(struct.pack(">QIII", index, part, marker, FILLER)
                + filler(index, part + 1, FILLER))


def check_sealed(b: bytes) -> None:
    assert fnv1a(b[:-8]) == struct.unpack(">Q", b[-8:])[0], "checksum of %s" % b.hex()


async def start(argv: list[str], ready: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    for _ in range(int(TIMEOUT * 20)):
        if os.path.exists(ready) and open(ready).read().strip():
            return proc, open(ready).read().strip()
        if proc.returncode is not None:
            break
        await asyncio.sleep(0.05)
    raise AssertionError("%s did not become ready" % argv)


async def finish(proc: asyncio.subprocess.Process, terminate: bool = False) -> str:
    if terminate and proc.returncode is None:
        proc.terminate()
    out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    return out.decode()


async def python_agent(soak: str, tmp: str) -> None:
    agent = symwire.Agent("py-soak-agent")
    expected = [0]

    @agent.handler
    async def handle(task: symwire.Task):
        check_sealed(task.payload)
        index = struct.unpack(">Q", task.payload[:8])[0]
        assert index == expected[0], "task %d arrived, expected %d" % (index, expected[0])
        expected[0] += 1
        for part in range(3):
            yield response_payload(index, part, PARTIAL)
        yield response_payload(index, 3, 3)

    ready = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(agent.serve("tcp://127.0.0.1:0", ready=ready.set_result))
    url = await asyncio.wait_for(ready, TIMEOUT)
    proxy, purl = await start([soak, "--role", "proxy", "--listen", "tcp://127.0.0.1:0",
                               "--connect", url, "--proxy-faults", FAULTS,
                               "--ready-file", os.path.join(tmp, "proxy"),
                               "--max-seconds", "30"], os.path.join(tmp, "proxy"))
    try:
        client = await asyncio.create_subprocess_exec(
            soak, "--role", "client", "--connect", purl, "--tasks", str(TASKS),
            "--max-seconds", "15", stdout=asyncio.subprocess.PIPE)
        out = await finish(client)
        print(out.strip())
        assert client.returncode == 0, "symwire-soak client exited %d" % client.returncode
        result = json.loads(out.strip().splitlines()[-1])
        assert expected[0] == TASKS, (expected[0], TASKS)
        print("proxy:", (await finish(proxy, terminate=True)).strip())
        assert result["lost"] == 0 and result["duplicated"] == 0, result
        print("tasks", expected[0], "resumes", result["resumes"])
    finally:
        server.cancel()
        if proxy.returncode is None:
            proxy.kill()


async def python_orchestrator(soak: str, tmp: str) -> None:
    server, surl = await start([soak, "--role", "server", "--listen", "tcp://127.0.0.1:0",
                                "--exit-after-sessions", "1", "--max-seconds", "20",
                                "--ready-file", os.path.join(tmp, "server")],
                               os.path.join(tmp, "server"))
    proxy, purl = await start([soak, "--role", "proxy", "--listen", "tcp://127.0.0.1:0",
                               "--connect", surl, "--proxy-faults", FAULTS,
                               "--ready-file", os.path.join(tmp, "proxy"),
                               "--max-seconds", "30"], os.path.join(tmp, "proxy"))
    try:
        async with symwire.connect(purl, timeout=TIMEOUT) as client:
            async def one(index: int) -> None:
                parts = [p async for p in client.stream(task_payload(index), timeout=TIMEOUT)]
                assert len(parts) == 4, (index, len(parts))
                for part, b in enumerate(parts):
                    check_sealed(b)
                    want = (index, part, 3 if part == 3 else PARTIAL)
                    assert struct.unpack(">QII", b[:16]) == want, (want, b[:16].hex())
            for first in range(0, TASKS, 8):   # 8 in flight, in submission order
                await asyncio.gather(*(one(i) for i in range(first, first + 8)))
            resumed = sum("resumed=1" in e for e in client.session.events)
        out = await finish(server)
        print(out.strip())
        assert server.returncode == 0, "symwire-soak server exited %d" % server.returncode
        print("proxy:", (await finish(proxy, terminate=True)).strip())
        print("tasks", TASKS, "resumes", resumed)
    finally:
        for p in (server, proxy):
            if p.returncode is None:
                p.kill()


def main(argv: list[str]) -> int:
    soak, mode = argv[1], argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        run = python_agent if mode == "agent" else python_orchestrator
        asyncio.run(asyncio.wait_for(run(soak, tmp), 3 * TIMEOUT))
    print("interop ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
