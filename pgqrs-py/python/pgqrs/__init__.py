"""pgqrs: a PostgreSQL-backed job queue and durable workflow engine (Rust core).

Queue API (synchronous; every call also has an ``*_async`` twin)::

    import pgqrs, json
    config = pgqrs.Config.from_dsn("postgresql://postgres@127.0.0.1/mydb")
    admin = pgqrs.Admin(config)
    admin.install()
    admin.create_queue("tasks")
    message = pgqrs.Producer(config, "tasks").enqueue(json.dumps({"task": "send_email"}))
    consumer = pgqrs.Consumer(config, "tasks")
    msg = consumer.dequeue()
    if msg:
        consumer.archive(msg.id, "completed")

Workflows (asyncio) are written with :mod:`pgqrs.decorators`.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
from typing import Any, Awaitable, Callable, Generator, Optional

from . import _pgqrs
from ._pgqrs import (
    Cancelled,
    Config,
    Consumer,
    DatabaseError,
    DeadLetter,
    DecodeError,
    Enqueued,
    IllegalTransition,
    InvalidArgument,
    InvalidDsn,
    InvalidQueueName,
    LeaseLost,
    Message,
    NotInstalled,
    PayloadTooLarge,
    PgqrsError,
    PoolTimeout,
    Producer,
    PyWorkflow,
    QueueInfo,
    QueueNotFound,
    QueueStats,
    RunBusy,
    RunNotFound,
    SchemaMismatch,
    SchemaVersionError,
    StepCall,
    Suspended,
    VersionMismatch,
    WorkflowDiverged,
    WorkflowFailed,
)

__all__ = [
    "Admin",
    "Cancelled",
    "Config",
    "Consumer",
    "DatabaseError",
    "DeadLetter",
    "DecodeError",
    "Enqueued",
    "IllegalTransition",
    "InvalidArgument",
    "InvalidDsn",
    "InvalidQueueName",
    "LeaseLost",
    "Message",
    "NotInstalled",
    "PayloadTooLarge",
    "PgqrsError",
    "PoolTimeout",
    "Producer",
    "PyWorkflow",
    "QueueInfo",
    "QueueNotFound",
    "QueueStats",
    "RunBusy",
    "RunNotFound",
    "SchemaMismatch",
    "SchemaVersionError",
    "StepCall",
    "Suspended",
    "VersionMismatch",
    "WorkflowDiverged",
    "WorkflowFailed",
    "run_workflows",
]

_log = logging.getLogger("pgqrs")

# Before the interpreter finalizes, runtime threads must stop entering Python.
atexit.register(_pgqrs._shutdown)


class _Installed:
    """What ``Admin.install()`` returns: the schema is installed already, and awaiting
    this (as async code does, ``await admin.install()``) is a no-op."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # makes this a generator

    def __repr__(self) -> str:
        return "<pgqrs schema installed>"


class Admin(_pgqrs.Admin):
    """Installs the schema, manages queues and creates workflow runs.

    ``Admin(config)`` or ``Admin(dsn, None)``. ``install()`` works in sync code and, as
    ``await admin.install()``, in async code.
    """

    def install(self) -> _Installed:  # type: ignore[override]
        """Creates the schema or applies pending migrations (idempotent)."""
        super().install()
        return _Installed()


async def run_workflows(
    admin: Admin,
    *workflows: Callable[..., Awaitable[Any]],
    concurrency: int = 8,
    poll_interval: float = 0.5,
    stop: Optional[asyncio.Event] = None,
    until_idle: bool = False,
) -> None:
    """Executes runs of the given ``@workflow`` functions as they become runnable: new
    runs made with ``create_workflow`` that nobody executes, runs woken from a durable
    sleep or by a signal, and runs whose executor died (once its lease ran out).

    Up to ``concurrency`` runs execute at once. Returns when ``stop`` is set, or with
    ``until_idle`` as soon as no run is waiting.
    """
    names = {}
    for wf in workflows:
        name = getattr(wf, "workflow_name", None)
        if name is None:
            raise TypeError(f"{wf!r} is not a @workflow function")
        names[name] = wf
    slots = asyncio.Semaphore(concurrency)
    running: set[asyncio.Task[None]] = set()

    async def execute(wf: Callable[..., Awaitable[Any]], ctx: PyWorkflow) -> None:
        try:
            await wf(ctx, ctx.input)
        except Suspended:
            pass
        except Exception:  # the run records its failure; the loop goes on
            _log.exception("workflow run %s failed", ctx.run_id)
        finally:
            slots.release()

    try:
        while stop is None or not stop.is_set():
            found = False
            for name, wf in names.items():
                await slots.acquire()
                ctx = await admin.next_workflow(name)
                if ctx is None:
                    slots.release()
                    continue
                found = True
                task = asyncio.ensure_future(execute(wf, ctx))
                running.add(task)
                task.add_done_callback(running.discard)
            if found:
                continue
            if until_idle and not running:
                return
            await _idle(stop, poll_interval)
    finally:
        if running:
            await asyncio.gather(*running, return_exceptions=True)


async def _idle(stop: Optional[asyncio.Event], seconds: float) -> None:
    if stop is None:
        await asyncio.sleep(seconds)
        return
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass
