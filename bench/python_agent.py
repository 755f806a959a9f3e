#!/usr/bin/python3
"""The Python agent of bench/python_agent.sh: python/symwire serving
symwire-bench-e2e's throughput workload (each task answered with one final
response echoing its payload, as the C++ bench agent does), over TCP.

Usage: python_agent.py READY_FILE. Listens on 127.0.0.1, a free port, and
writes its tcp:// URL to READY_FILE; serves until terminated.
"""

import asyncio
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

import symwire  # noqa: E402

# As the C++ bench agent (bench/e2e_symwire.cpp): max_tasks 65536, so the
# task credit never limits --window; everything else SPEC.md §19's defaults.
agent = symwire.Agent(config=symwire.Config(agent_id="py-bench-agent", role=1,
                                            max_tasks=65536))


@agent.handler
async def echo(task: symwire.Task):
    yield task.payload


def ready(url: str) -> None:
    tmp = sys.argv[1] + ".tmp"
    with open(tmp, "w") as f:
        f.write(url + "\n")
    os.replace(tmp, sys.argv[1])


async def main() -> None:
    serving = asyncio.create_task(agent.serve("tcp://127.0.0.1:0", ready=ready))
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, serving.cancel)
    try:
        await serving
    except asyncio.CancelledError:
        pass


asyncio.run(main())
