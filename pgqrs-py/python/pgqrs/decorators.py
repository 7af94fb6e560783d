"""``@workflow`` and ``@step``: durable workflows written as ordinary async functions.

A ``@step``'s output is recorded in Postgres the first time it completes; when a run is
executed again (resumed after a crash, or called again), recorded steps return their
recorded output and their body does not run. Each call of a step is a step of its own,
identified by its position in the run, so a workflow must call the same steps with the
same inputs on every execution (do the non-deterministic work inside steps).

Inputs and outputs of steps and workflows go through JSON: a step returns what a replay
would return (a tuple comes back as a list, dict keys as strings).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from typing import Any, Awaitable, Callable, Optional, TypeVar, overload

from ._pgqrs import LeaseLost, PyWorkflow, Suspended

__all__ = ["step", "workflow"]

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def _check_ctx(ctx: Any, what: str) -> None:
    if not isinstance(ctx, PyWorkflow):
        raise TypeError(
            f"{what} must be called with the run's PyWorkflow as its first argument "
            f"(got {type(ctx).__name__}); get one from `await admin.create_workflow(...)`"
        )


def _inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return {"args": list(args), "kwargs": kwargs} if kwargs else list(args)


@overload
def step(fn: F) -> F: ...
@overload
def step(
    *, name: Optional[str] = None, retries: int = 0, backoff: float = 0.1
) -> Callable[[F], F]: ...


def step(
    fn: Optional[F] = None,
    *,
    name: Optional[str] = None,
    retries: int = 0,
    backoff: float = 0.1,
) -> Any:
    """Makes ``fn(ctx, *args)`` a durable step: it runs once per call position in a run,
    and its (JSON) output is recorded before it returns.

    ``retries``: attempts after the first when the body raises, waiting ``backoff``
    seconds, doubled each time. A step that still fails raises its exception to the
    workflow; nothing is recorded for it.
    """
    if retries < 0 or backoff < 0:
        raise ValueError("retries and backoff must not be negative")

    def decorate(fn: F) -> F:
        step_name = name or fn.__name__

        @functools.wraps(fn)
        async def run(ctx: PyWorkflow, *args: Any, **kwargs: Any) -> Any:
            _check_ctx(ctx, f"step {step_name!r}")
            call = ctx._step_begin(step_name, _inputs(args, kwargs))
            if call.replayed:
                return call.output
            delay = backoff
            for attempt in range(retries + 1):
                try:
                    output = fn(ctx, *args, **kwargs)
                    if inspect.isawaitable(output):
                        output = await output
                    break
                except (Suspended, LeaseLost):
                    raise
                except Exception:
                    if attempt == retries:
                        raise
                call._note_attempt()
                await asyncio.sleep(delay)
                delay *= 2
            return await ctx._step_complete(call, output)

        run.step_name = step_name  # type: ignore[attr-defined]
        return run  # type: ignore[return-value]

    return decorate(fn) if fn is not None else decorate


@overload
def workflow(fn: F) -> F: ...
@overload
def workflow(*, name: Optional[str] = None, version: str = "") -> Callable[[F], F]: ...


def workflow(fn: Optional[F] = None, *, name: Optional[str] = None, version: str = "") -> Any:
    """Makes ``fn(ctx, input)`` the body of workflow ``name`` (the function's name by
    default). Calling it with a run's context executes the run: recorded steps replay,
    the rest run, and the result (or the exception) is recorded. Calling it on a run that
    succeeded already returns the recorded result without running anything.
    """

    def decorate(fn: F) -> F:
        workflow_name = name or fn.__name__

        @functools.wraps(fn)
        async def run(ctx: PyWorkflow, *args: Any, **kwargs: Any) -> Any:
            _check_ctx(ctx, f"workflow {workflow_name!r}")
            done, output = ctx._begin(workflow_name, version)
            if done:
                return output
            try:
                result = await fn(ctx, *args, **kwargs)
            except Exception as exc:
                try:
                    await ctx._finish_err(f"{type(exc).__name__}: {exc}")
                except (Suspended, LeaseLost):
                    pass  # the body's own exception says so
                raise
            except BaseException:
                # Cancelled or interrupted: nothing is recorded; the run resumes elsewhere
                # once its lease runs out.
                ctx._abandon()
                raise
            return await ctx._finish_ok(result)

        run.workflow_name = workflow_name  # type: ignore[attr-defined]
        return run  # type: ignore[return-value]

    return decorate(fn) if fn is not None else decorate
