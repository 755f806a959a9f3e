#!/usr/bin/python3
"""A Python agent with the task language of examples/stdio_agent.cpp, for the
C++ orchestrator examples/stdio_orchestrator.cpp (interop, ctest
python_interop_cpp_orchestrator):

  "stream N"  parts "1 ", ..., "N ", then a final "done";
  "slow N"    the same, one part every 20 ms (cancellable midway; logs
              "agent: task T cancelled" to stderr);
  anything else fails with INVALID_ARGUMENT (3);
  method "text.upper": its payload in upper case (any other method fails
  UNIMPLEMENTED; "symwire.health" answers SERVING).
SYMWIRE_STDIO_AUTH=token:SECRET or hmac:KEY selects the authentication method,
as for the C++ stdio examples.
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import symwire  # noqa: E402

auth, _, secret = os.environ.get("SYMWIRE_STDIO_AUTH", "").partition(":")
agent = symwire.Agent("py-stdio-agent", config=symwire.Config(
    agent_id="py-stdio-agent", role=1, auth=auth if secret else "none",
    secret=secret.encode()))


@agent.handler
async def handle(task: symwire.Task):
    verb, _, count = task.payload.decode("utf-8", "replace").partition(" ")
    if verb not in ("stream", "slow") or not count.isdigit():
        raise symwire.SymwireError(3, "INVALID_ARGUMENT", "unknown task %r" % task.payload)
    try:
        for k in range(1, int(count) + 1):
            if verb == "slow":
                await asyncio.sleep(0.02)
            yield b"%d " % k
    except asyncio.CancelledError:
        print("agent: task %d cancelled" % task.id, file=sys.stderr)
        raise
    yield b"done"


@agent.method("text.upper")
async def upper(task: symwire.Task):
    yield task.payload.upper()


asyncio.run(agent.serve("stdio"))
