"""symwire for Python: the codec (symwire.codec), the sans-I/O session
(symwire.session), asyncio transports and the API (symwire.aio), and the
golden-vector checker (`python3 -m symwire.vectors selftest|check`)."""

from .aio import Agent, Client, Task, connect
from .session import (DRAINING, HEALTH_METHOD, NOT_SERVING, SERVING, Config, Event, Session,
                      SymwireError)

__all__ = ["Agent", "Client", "Task", "connect", "Config", "Event", "Session", "SymwireError",
           "HEALTH_METHOD", "SERVING", "NOT_SERVING", "DRAINING"]
