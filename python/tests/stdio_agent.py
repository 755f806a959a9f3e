"""A Python agent on its own stdin/stdout (test_aio.test_stdio)."""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import symwire  # noqa: E402

agent = symwire.Agent("py-stdio-agent")


@agent.handler
async def handle(task):
    yield b"stdio: " + task.payload
    yield b"done"


asyncio.run(agent.serve("stdio"))
