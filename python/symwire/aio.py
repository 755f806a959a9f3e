"""asyncio transports and the Python API (layer 3): an orchestrator client
(`connect`) and an agent (`Agent`), over tcp://, unix://, tls:// and stdio
(SPEC.md §20).

    async with symwire.connect("tcp://127.0.0.1:7000") as client:
        answer = await client.call("summarize", b"payload", timeout=2.0)
        async for part in client.stream("summarize", b"payload"):
            ...
        raw = await client.call(b"payload")        # a task without a method
        status = await client.check_health()       # symwire.SERVING

    agent = symwire.Agent("my-agent")

    @agent.method("summarize")
    async def summarize(task):
        yield b"part"            # the last part yielded is sent FINAL

    @agent.handler               # tasks without a method (optional)
    async def handle(task):
        yield task.payload

    await agent.serve("tcp://127.0.0.1:7000")

A method (SPEC.md §5.1, §13.5) travels as the task's METHOD extension; the
agent routes it to its handler, answers an unknown one UNIMPLEMENTED (127)
without running anything, and answers "symwire.health" itself (§13.6).
Cancelling the asyncio task that awaits `call` (or leaving `stream` early)
sends AGENT_CANCEL. Task failures raise `SymwireError` with the canonical
code (`code`) and the symwire code (`symwire_code`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import ssl
import sys
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Generator, Optional
from urllib.parse import urlsplit

from . import codec as c
from .session import (DRAINING, HEALTH_METHOD, HEALTH_NAMES, SERVING, Acceptor, Config, Event,
                      Session, SymwireError, error_from_name, validate_method)

__all__ = ["Client", "connect", "Agent", "Task"]

_EOF = object()


def _now() -> int:
    return time.monotonic_ns() // 1000


@dataclass
class Task:
    """A task an agent runs: its id, payload, and remaining deadline budget
    in µs when it arrived (None: no deadline)."""

    id: int
    payload: bytes
    deadline_us: Optional[int] = None
    method: Optional[str] = None     # the task's METHOD (§5.1), None without one


def _call_args(method_or_payload: "str | bytes", payload: Optional[bytes],
               method: Optional[str]) -> tuple[Optional[str], bytes]:
    """call("m", payload) / call(payload) / call(payload, method="m")."""
    if isinstance(method_or_payload, str):
        if method is not None:
            raise TypeError("the method is given twice")
        return method_or_payload, b"" if payload is None else bytes(payload)
    if payload is not None:
        raise TypeError("call(method, payload): the method is a str")
    return method, bytes(method_or_payload)


async def _open(url: str, ssl_context: Optional[ssl.SSLContext]
                ) -> tuple[asyncio.StreamReader, Any]:
    u = urlsplit(url)
    if u.scheme == "tcp":
        return await asyncio.open_connection(u.hostname, u.port)
    if u.scheme == "tls":
        ctx = ssl_context or ssl.create_default_context()
        return await asyncio.open_connection(u.hostname, u.port, ssl=ctx,
                                             server_hostname=u.hostname)
    if u.scheme == "unix":
        return await asyncio.open_unix_connection(u.path)
    if u.scheme == "stdio":
        # stdio:PROGRAM ARGS... (shell quoting): the orchestrator runs the
        # agent as a child process.
        rest = url.partition(":")[2]
        argv = shlex.split(rest[2:] if rest.startswith("//") else rest)
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert proc.stdout is not None  # stdout=PIPE
        return proc.stdout, _PipeWriter(proc)
    raise ValueError("unsupported symwire URL %r (tcp://, tls://, unix://, stdio:)" % url)


class _PipeWriter:
    """A StreamWriter-like front of a child's stdin."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)

    async def drain(self) -> None:
        assert self.proc.stdin is not None
        await self.proc.stdin.drain()

    def close(self) -> None:
        """Closes the child's stdin (its end of file, §20); a child still
        running 2 s later is terminated."""
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
            asyncio.get_running_loop().call_later(2.0, self._terminate)

    def _terminate(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()

    async def wait_closed(self) -> None:
        """Waits up to 2 s for the child to exit, then terminates it."""
        try:
            await asyncio.wait_for(self.proc.wait(), 2.0)
        except asyncio.TimeoutError:
            self._terminate()
            await self.proc.wait()


class _Driver:
    """Runs one session over successive transport connections: a reader, one
    timer, writes in order."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.writer: Any = None
        self.timer_wake = asyncio.Event()

    def send(self, data: bytes) -> None:
        if data and self.writer is not None and self.session.up:
            closing = getattr(self.writer, "is_closing", None)
            if closing is None or not closing():
                self.writer.write(data)

    async def timers(self) -> None:
        while self.session.state not in ("closed", "failed"):
            due = self.session.next_timer()
            self.timer_wake.clear()
            delay = None if due is None else max(0.0, (due - _now()) / 1e6)
            try:
                async with asyncio.timeout(delay):
                    await self.timer_wake.wait()
            except TimeoutError:
                pass
            if due is not None and _now() >= due:
                self.send(self.session.on_timer(_now()))
                self.after()

    def after(self) -> None:
        self.timer_wake.set()
        self.dispatch(self.session.take_events())
        if self.session.connection_ended and self.writer is not None:
            self.writer.close()

    def dispatch(self, events: list[Event]) -> None:
        raise NotImplementedError


class Client(_Driver):
    """An orchestrator connection (the session's initiator). Use `connect()`."""

    def __init__(self, url: str, config: Config, ssl_context: Optional[ssl.SSLContext],
                 reconnect: bool, max_unread_response_bytes: int = 64 << 20) -> None:
        super().__init__(Session("initiator", config, _now()))
        # Back-pressure (as the C++ ChannelOptions::max_unread_response_bytes):
        # above this many bytes of responses not yet taken by call/stream the
        # client stops reading the connection until they fall to half of it.
        self.max_unread_response_bytes = max_unread_response_bytes
        self.unread = 0
        self.readable = asyncio.Event()
        self.readable.set()
        # Set after every input: credit may have returned (§15.1 "writable").
        self.writable = asyncio.Event()
        self.url = url
        self.ssl_context = ssl_context
        self.reconnect = reconnect and not url.startswith("stdio")
        self.queues: dict[int, asyncio.Queue[Event | SymwireError]] = {}
        self.established = asyncio.get_running_loop().create_future()
        self._tasks: list[asyncio.Task[None]] = []
        self.closed = asyncio.Event()

    async def _start(self, timeout: float) -> None:
        await self._dial()
        self._tasks = [asyncio.create_task(self.timers())]
        await asyncio.wait_for(asyncio.shield(self.established), timeout)

    async def _dial(self) -> None:
        reader, self.writer = await _open(self.url, self.ssl_context)
        self.send(self.session.connect(_now()))
        self._tasks.append(asyncio.create_task(self._read(reader, self.writer)))

    async def _read(self, reader: asyncio.StreamReader, writer: Any) -> None:
        try:
            while True:
                await self.readable.wait()
                data = await reader.read(65536)
                if not data:
                    break
                self.send(self.session.receive(data, _now()))
                self.after()
                if self.session.connection_ended:
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
        if writer is not self.writer:
            return
        s = self.session
        if s.up:
            s.lost(_now())
        self.after()
        if s.state == "disconnected" and self.reconnect and s.session_id is not None:
            delay = 0.05
            for _ in range(20):
                await asyncio.sleep(delay)
                try:
                    await self._dial()
                    return
                except OSError:
                    delay = min(delay * 1.6, 2.0)
        self._end(error_from_name("UNAVAILABLE", "the connection was lost")
                  if s.state not in ("closed",) else None)

    def _end(self, err: Optional[SymwireError]) -> None:
        err = self.session.failure or err
        if not self.established.done():
            self.established.set_exception(err or error_from_name("UNAVAILABLE", "closed"))
        for q in self.queues.values():
            q.put_nowait(err or error_from_name("UNAVAILABLE", "the session has ended"))
        self.closed.set()

    def after(self) -> None:
        super().after()
        self.writable.set()

    async def _submit(self, payload: bytes, method: Optional[str],
                      timeout: Optional[float]) -> tuple[int, bytes]:
        """session.submit, waiting while the credit is used up (NO_CREDIT,
        REPLAY_BUFFER_FULL: §15.1) as the C++ async_submit does; the wait
        counts against `timeout` (then DEADLINE_EXCEEDED)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            deadline = None
            if timeout is not None:
                left = timeout - (loop.time() - start)
                if left <= 0:
                    raise error_from_name("DEADLINE_EXCEEDED", "no credit within the timeout")
                deadline = max(1, int(left * 1e6))
            try:
                return self.session.submit(payload, deadline, _now(), method=method)
            except SymwireError as err:
                if err.name not in ("NO_CREDIT", "REPLAY_BUFFER_FULL"):
                    raise
            self.writable.clear()
            try:
                async with asyncio.timeout(None if timeout is None
                                           else max(0.0, timeout - (loop.time() - start))):
                    await self.writable.wait()
            except TimeoutError:
                pass

    def dispatch(self, events: list[Event]) -> None:
        for e in events:
            if e.type == "Established" and not self.established.done():
                self.established.set_result(None)
            elif e.type in ("ResponseReceived", "TaskFailed", "TaskCancelled"):
                q = self.queues.get(e.task)
                if q is not None:
                    q.put_nowait(e)
                    if e.type == "ResponseReceived":
                        self.unread += len(e.fields["payload"])
                        if self.unread > self.max_unread_response_bytes:
                            self.readable.clear()
            elif e.type == "SessionFailed":
                self._end(self.session.failure)

    async def stream(self, method_or_payload: "str | bytes", payload: Optional[bytes] = None, *,
                     method: Optional[str] = None,
                     timeout: Optional[float] = None) -> AsyncIterator[bytes]:
        """Submits a task and yields every response part, the final one last:
        `stream("summarize", payload)` names the method (sent as METHOD,
        §5.1), `stream(payload)` sends none. `timeout` (seconds) is sent as
        the task's DEADLINE (§13.4). Raises SymwireError: the task's error
        (an unknown method: code 12, symwire_code 127), DEADLINE_EXCEEDED,
        or a local refusal (FRAME_TOO_LARGE, INVALID_FRAME for a bad method
        name, UNIMPLEMENTED if the peer did not announce METHODS,
        PEER_DRAINING). Without credit (the peer's max_tasks, the replay
        window) it waits for it, within `timeout`."""
        method, payload = _call_args(method_or_payload, payload, method)
        task, data = await self._submit(payload, method, timeout)
        q: asyncio.Queue[Event | SymwireError] = asyncio.Queue()
        self.queues[task] = q
        self.send(data)
        self.after()
        done = False
        try:
            while True:
                e = await q.get()
                if isinstance(e, SymwireError):
                    done = True
                    raise e
                if e.type == "ResponseReceived":
                    if e.fields["final"]:
                        done = True
                    self._taken(len(e.fields["payload"]))
                    yield e.fields["payload"]
                    if done:
                        return
                elif e.type == "TaskFailed":
                    done = True
                    raise SymwireError(int(e.fields["code"]),
                                       e.fields.get("detail_name") or e.fields["status"],
                                       e.fields["message"], e.fields["retryable"],
                                       e.fields.get("detail"))
                elif e.type == "TaskCancelled":
                    done = True
                    raise error_from_name(e.fields["status"], "task %d" % task)
        finally:
            self.queues.pop(task, None)
            while not q.empty():                  # left early: nothing more to take
                e = q.get_nowait()
                if isinstance(e, Event) and e.type == "ResponseReceived":
                    self._taken(len(e.fields["payload"]))
            if not done:
                # Left early or cancelled: AGENT_CANCEL (§13.3).
                self.send(self.session.cancel(task, _now()))
                self.after()

    def _taken(self, n: int) -> None:
        self.unread -= n
        if self.unread <= self.max_unread_response_bytes // 2:
            self.readable.set()

    async def call(self, method_or_payload: "str | bytes", payload: Optional[bytes] = None, *,
                   method: Optional[str] = None, timeout: Optional[float] = None) -> bytes:
        """Submits a task and returns its responses joined (see `stream`):
        `await client.call("summarize", payload, timeout=2.0)`."""
        parts = [p async for p in self.stream(method_or_payload, payload, method=method,
                                              timeout=timeout)]
        return b"".join(parts)

    async def check_health(self, timeout: Optional[float] = None) -> int:
        """The peer's built-in health method (§13.6): SERVING (1),
        NOT_SERVING (2) or DRAINING (3). An answer that is not one of these
        bytes raises SymwireError MALFORMED_PAYLOAD (INVALID_ARGUMENT)."""
        answer = await self.call(HEALTH_METHOD, b"", timeout=timeout)
        if len(answer) != 1 or answer[0] not in HEALTH_NAMES:
            raise error_from_name("MALFORMED_PAYLOAD", "health answer %r at payload offset 0: "
                                  "expected one byte 1..3" % answer)
        return answer[0]

    async def aclose(self, timeout: float = 2.0) -> None:
        """Drains and closes (§15.3), waiting at most `timeout` seconds."""
        if self.session.state == "established":
            self.send(self.session.close(_now()))
            self.after()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.closed.wait(), timeout)
        for t in self._tasks:
            t.cancel()
        if self.writer is not None:
            self.writer.close()
            if isinstance(self.writer, _PipeWriter):
                await self.writer.wait_closed()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


async def _open_client(url: str, *, agent_id: str = "py-orchestrator", auth: str = "none",
                       secret: bytes = b"", ssl_context: Optional[ssl.SSLContext] = None,
                       reconnect: bool = True, timeout: float = 10.0,
                       config: Optional[Config] = None,
                       max_unread_response_bytes: int = 64 << 20) -> Client:
    """Connects and completes the handshake (see `connect`)."""
    cfg = config or Config(agent_id=agent_id, role=0, auth=auth, secret=secret)
    client = Client(url, cfg, ssl_context, reconnect, max_unread_response_bytes)
    await client._start(timeout)
    return client


class _Connecting:
    def __init__(self, coro: Awaitable[Client]) -> None:
        self.coro = coro
        self.client: Optional[Client] = None

    def __await__(self) -> Generator[Any, None, Client]:
        return self.coro.__await__()

    async def __aenter__(self) -> Client:
        self.client = await self.coro
        return self.client

    async def __aexit__(self, *exc: Any) -> None:
        if self.client is not None:
            await self.client.aclose()


def connect(url: str, *, agent_id: str = "py-orchestrator", auth: str = "none",
            secret: bytes = b"", ssl_context: Optional[ssl.SSLContext] = None,
            reconnect: bool = True, timeout: float = 10.0,
            config: Optional[Config] = None,
            max_unread_response_bytes: int = 64 << 20) -> _Connecting:
    """Connects to an agent at `url` and completes the handshake (within
    `timeout` s): `async with connect(url) as client:` (closes on exit) or
    `client = await connect(url)`. `auth` is "none", "token" or "hmac" with
    `secret`; with `reconnect` a lost tcp/unix/tls connection is redialled
    and the session resumed (§16). Above `max_unread_response_bytes` of
    responses not yet taken by call/stream the client stops reading the
    connection until they fall to half of it (back-pressure on the agent)."""
    return _Connecting(_open_client(url, agent_id=agent_id, auth=auth, secret=secret,
                                    ssl_context=ssl_context, reconnect=reconnect,
                                    timeout=timeout, config=config,
                                    max_unread_response_bytes=max_unread_response_bytes))

Handler = Callable[[Task], AsyncIterator[bytes]]


class _AgentSession(_Driver):
    def __init__(self, agent: "Agent", session: Session) -> None:
        super().__init__(session)
        self.agent = agent
        self.running: dict[int, asyncio.Task[None]] = {}
        self.timer_task: Optional[asyncio.Task[None]] = None

    def dispatch(self, events: list[Event]) -> None:
        for e in events:
            if e.type == "TaskReceived":
                dl = e.fields.get("deadline_us")
                method = e.fields.get("method")
                t = Task(e.task, e.fields["payload"], None if dl == "-" else dl, method)
                s = self.session
                # §13.5: route by method; the health method is answered here.
                if method == HEALTH_METHOD:
                    self.send(s.respond(e.task, bytes([self.agent.serving_status]), True,
                                        _now()))
                    continue
                handler = (self.agent._handler if method is None
                           else self.agent._methods.get(method))
                if handler is None:
                    self.send(s.fail_unknown_method(e.task, method, _now()) if method is not None
                              else s.fail_task(e.task, c.CANONICAL_CODES["UNIMPLEMENTED"],
                                               "no task handler", _now(), retryable=True,
                                               detail=c.SESSION_ERRORS["UNIMPLEMENTED"][0]))
                    continue
                self.running[e.task] = asyncio.create_task(self._run(t, handler))
            elif e.type == "TaskCancelled":
                h = self.running.pop(e.task, None)
                if h is not None:
                    h.cancel()
            elif e.type in ("SessionClosed", "SessionFailed"):
                for h in self.running.values():
                    h.cancel()
                self.running.clear()
                self.agent.acceptor.forget(self.session)
                self.agent.drivers.pop(id(self.session), None)
                self.agent._ended.set()

    async def _run(self, task: Task, handler: "Handler") -> None:
        s = self.session
        try:
            prev: Optional[bytes] = None
            async for part in handler(task):
                if prev is not None:
                    self.send(s.respond(task.id, prev, False, _now()))
                prev = bytes(part)
            self.send(s.respond(task.id, prev or b"", True, _now()))
        except asyncio.CancelledError:
            return
        except SymwireError as err:
            self.send(s.fail_task(task.id, err.code, err.message or err.name, _now()))
        except Exception as err:  # the handler's failure ends its task, not the agent
            self.send(s.fail_task(task.id, c.CANONICAL_CODES["INTERNAL"],
                                  "%s: %s" % (type(err).__name__, err), _now()))
        finally:
            self.running.pop(task.id, None)
        self.after()


class Agent:
    """An agent: a handler per method (`@agent.method("name")`), and
    optionally one for tasks without a method (`@agent.handler`). It
    announces METHODS (§11.4) and answers "symwire.health" itself with
    `serving_status` (§13.6)."""

    def __init__(self, agent_id: str = "py-agent", *, auth: str = "none", secret: bytes = b"",
                 config: Optional[Config] = None) -> None:
        self.config = config or Config(agent_id=agent_id, role=1, auth=auth, secret=secret)
        self.acceptor = Acceptor(self.config)
        self._handler: Optional[Handler] = None
        self._methods: dict[str, Handler] = {}
        self.serving_status: int = SERVING
        self.drivers: dict[int, _AgentSession] = {}
        self._stop = asyncio.Event()
        self._ended = asyncio.Event()     # a session ended (closed or failed)

    def handler(self, fn: Handler) -> Handler:
        """Decorator: the handler of tasks without a method: `async def
        handle(task): yield part` (the last part is FINAL; raise
        SymwireError to fail the task with its code). Without one such
        tasks fail UNIMPLEMENTED "no task handler"."""
        self._handler = fn
        return fn

    def method(self, name: str) -> Callable[[Handler], Handler]:
        """Decorator registering the handler of tasks whose method is `name`
        (1..255 visible ASCII bytes, not under the reserved "symwire."):
        `@agent.method("summarize") async def summarize(task): yield part`.
        A task naming a method nobody registered fails UNIMPLEMENTED (127,
        retryable) without running. Raises ValueError for a bad, reserved or
        already registered name."""
        try:
            validate_method(name)
        except SymwireError as err:
            raise ValueError(err.message) from None
        if name.startswith("symwire."):
            raise ValueError("method %r: names under \"symwire.\" are reserved" % name)
        if name in self._methods:
            raise ValueError("method %r is registered already" % name)

        def register(fn: Handler) -> Handler:
            self._methods[name] = fn
            return fn
        return register

    async def shutdown(self, timeout: float = 10.0) -> None:
        """Graceful shutdown (§15.3): stops accepting connections, the health
        method answers DRAINING, and every session drains: tasks that cross
        the drain are answered UNAVAILABLE (retryable, PEER_DRAINING) without
        running, running tasks finish, then each session closes with bye.
        Sessions still open `timeout` seconds later are ended (their tasks
        cancelled). `serve()` returns once the listener is closed."""
        self.serving_status = DRAINING
        self._stop.set()
        for drv in list(self.drivers.values()):
            if drv.session.state == "established":
                drv.send(drv.session.close(_now()))
                drv.after()
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self.drivers and loop.time() < end:
            self._ended.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._ended.wait(), end - loop.time())
        for drv in list(self.drivers.values()):
            for h in drv.running.values():
                h.cancel()
            if drv.timer_task is not None:
                drv.timer_task.cancel()
            if drv.writer is not None:
                drv.writer.close()
        self.drivers.clear()

    def set_serving_status(self, status: int) -> None:
        """What the health method answers: SERVING, NOT_SERVING or DRAINING."""
        if status not in HEALTH_NAMES:
            raise ValueError("serving status %r: expected 1, 2 or 3" % status)
        self.serving_status = status

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: Any) -> None:
        try:
            conn, out = self.acceptor.new_connection(_now())
        except SymwireError:          # max_handshakes connections handshake already
            with contextlib.suppress(Exception):
                writer.close()
            return
        drv = self._driver(conn)
        drv.writer = writer
        drv.send(out)
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if drv.writer is not writer:
                    break                    # superseded by a resumed connection (§20)
                owner, out = self.acceptor.receive(drv.session, data, _now())
                if owner is not drv.session:           # resumed: the session takes it
                    old = drv
                    drv = self._driver(owner)
                    drv.writer = writer
                    old.writer = None
                    self._forget_driver(old)
                drv.send(out)
                drv.after()
                if drv.session.connection_ended:
                    break
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.acceptor.connection_closed(drv.session)
            if drv.writer is writer:
                if drv.session.up:
                    drv.session.lost(_now())
                drv.after()
                drv.writer = None
                if drv.session.session_id is None:
                    self._forget_driver(drv)     # never established: nothing to resume
            with contextlib.suppress(Exception):
                writer.close()

    def _forget_driver(self, drv: _AgentSession) -> None:
        if self.drivers.get(id(drv.session)) is drv:
            del self.drivers[id(drv.session)]
        if drv.timer_task is not None:
            drv.timer_task.cancel()

    def _driver(self, s: Session) -> _AgentSession:
        drv = self.drivers.get(id(s))
        if drv is None:
            drv = self.drivers[id(s)] = _AgentSession(self, s)
            drv.timer_task = asyncio.create_task(drv.timers())
        return drv

    async def serve(self, url: str, *, ssl_context: Optional[ssl.SSLContext] = None,
                    ready: Optional[Callable[[str], None]] = None) -> None:
        """Serves until cancelled or shut down (`shutdown`). tcp://HOST:PORT (port 0: any; `ready` gets
        the bound URL), unix:///PATH, tls://HOST:PORT (ssl_context
        required), stdio (this process's stdin/stdout)."""
        if self._handler is None and not self._methods:
            raise ValueError("no handler: decorate one with @agent.method(name) or "
                             "@agent.handler")
        u = urlsplit(url)
        if url.partition(":")[0] == "stdio":
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader()
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                         sys.stdin)
            wt, wp = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin,
                                                   os.fdopen(sys.stdout.fileno(), "wb", 0))
            writer = asyncio.StreamWriter(wt, wp, None, loop)
            if ready:
                ready(url)
            await self._serve_connection(reader, writer)
            return
        if u.scheme in ("tcp", "tls"):
            if u.scheme == "tls" and ssl_context is None:
                raise ValueError("tls:// needs an ssl_context with the certificate")
            server = await asyncio.start_server(self._serve_connection, u.hostname, u.port,
                                                ssl=ssl_context)
            port = server.sockets[0].getsockname()[1]
            bound = "%s://%s:%d" % (u.scheme, u.hostname, port)
        elif u.scheme == "unix":
            server = await asyncio.start_unix_server(self._serve_connection, u.path)
            bound = url
        else:
            raise ValueError("unsupported symwire URL %r" % url)
        if ready:
            ready(bound)
        async with server:
            await self._stop.wait()         # shutdown(); or cancel serve()
