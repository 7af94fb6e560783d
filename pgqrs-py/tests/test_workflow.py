"""Workflows: the seed's snippet, replay without re-running steps, retries, failures,
durable sleep, signals, and claiming runs."""

from __future__ import annotations

import asyncio
import importlib

import pytest

import pgqrs
from pgqrs import PyWorkflow
from pgqrs.decorators import step, workflow

from conftest import psql


async def test_the_seed_workflow_snippet_runs_as_written(dsn, monkeypatch):
    monkeypatch.setenv("PGQRS_DSN", dsn)
    seed = importlib.import_module("seed_workflow")
    admin, ctx, result = await seed.main()
    assert result == {"processed": True, "count": 2}
    assert admin.workflow_status(ctx.run_id) == "succeeded"
    assert await admin.workflow_result(ctx.run_id) == result
    # Executing the finished run again replays it: no request is made.
    assert await seed.data_pipeline(ctx, "https://api.example.com") == result
    assert seed.http_client.requests == 1
    steps = psql("SELECT string_agg(name, ',' ORDER BY seq) FROM pgqrs.steps", dsn.rsplit("/", 1)[1])
    assert steps == "fetch_data,process_data"


class Calls:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def hit(self, name: str) -> int:
        self.counts[name] = self.counts.get(name, 0) + 1
        return self.counts[name]


async def test_completed_steps_never_run_again_and_repeated_calls_are_distinct(admin):
    calls = Calls()

    @step
    async def double(ctx: PyWorkflow, n: int) -> int:
        calls.hit(f"double({n})")
        return 2 * n

    @step
    async def flaky_tail(ctx: PyWorkflow, total: int) -> int:
        if calls.hit("tail") == 1:
            raise RuntimeError("the tail fails the first time")
        return total + 1

    @workflow
    async def sums(ctx: PyWorkflow, ns: list) -> int:
        total = 0
        for n in ns:
            total += await double(ctx, n)
        total += await double(ctx, ns[0])  # the same call again: a step of its own
        return await flaky_tail(ctx, total)

    ctx = await admin.create_workflow("sums", [1, 2, 3])
    with pytest.raises(RuntimeError, match="first time"):
        await sums(ctx, [1, 2, 3])
    assert admin.workflow_status(ctx.run_id) == "failed"
    assert calls.counts == {"double(1)": 2, "double(2)": 1, "double(3)": 1, "tail": 1}

    # A failed run is executed again only after a retry; its recorded steps replay.
    with pytest.raises(pgqrs.WorkflowFailed, match="first time"):
        await sums(ctx, [1, 2, 3])
    admin.retry_workflow(ctx.run_id)
    retried = await admin.next_workflow("sums")
    assert retried is not None and retried.run_id == ctx.run_id
    assert await sums(retried, retried.input) == 15
    assert calls.counts == {"double(1)": 2, "double(2)": 1, "double(3)": 1, "tail": 2}
    assert admin.workflow_status(ctx.run_id) == "succeeded"
    with pytest.raises(pgqrs.IllegalTransition):
        admin.retry_workflow(ctx.run_id)


async def test_step_retries_with_backoff_count_as_one_step(admin, dsn):
    attempts = []

    @step(retries=2, backoff=0.01)
    async def shaky(ctx: PyWorkflow) -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return "ok"

    @workflow
    async def retrying(ctx: PyWorkflow, _input: None) -> str:
        return await shaky(ctx)

    ctx = await admin.create_workflow("retrying", None)
    assert await retrying(ctx, None) == "ok"
    assert len(attempts) == 3
    recorded = psql("SELECT attempts FROM pgqrs.steps", dsn.rsplit("/", 1)[1])
    assert recorded == "3"


async def test_durable_sleep_and_signals_suspend_and_resume_the_run(admin):
    order = []

    @step
    async def note(ctx: PyWorkflow, what: str) -> str:
        order.append(what)
        return what

    @workflow
    async def approval(ctx: PyWorkflow, doc: str) -> dict:
        await note(ctx, f"drafted {doc}")
        await ctx.sleep(1.0)
        decision = await ctx.recv("decision")
        await note(ctx, f"decided {decision['ok']}")
        return {"doc": doc, "approved": decision["ok"]}

    ctx = await admin.create_workflow("approval", "q3-report")
    with pytest.raises(pgqrs.Suspended, match="sleeping"):
        await approval(ctx, "q3-report")
    assert admin.workflow_status(ctx.run_id) == "sleeping"
    assert await admin.next_workflow("approval") is None  # not before its time

    await asyncio.sleep(1.1)
    await pgqrs.run_workflows(admin, approval, until_idle=True)
    assert admin.workflow_status(ctx.run_id) == "waiting"

    await admin.send_signal(ctx.run_id, "decision", {"ok": True})
    await pgqrs.run_workflows(admin, approval, until_idle=True)
    assert await admin.workflow_result(ctx.run_id) == {"doc": "q3-report", "approved": True}
    assert order == ["drafted q3-report", "decided True"]


async def test_run_workflows_executes_runs_nobody_holds_until_stopped(config):
    admin = pgqrs.Admin(config.with_visibility_timeout(1.0))
    @workflow
    async def square(ctx: PyWorkflow, n: int) -> int:
        return n * n

    contexts = [await admin.create_workflow("square", n) for n in range(5)]
    # Abandon them: as if their creator went away. Their leases must run out first.
    for ctx in contexts:
        ctx._begin("square", "")
        ctx._abandon()
    stop = asyncio.Event()
    runner = asyncio.ensure_future(pgqrs.run_workflows(admin, square, poll_interval=0.05, stop=stop))
    results = await asyncio.wait_for(
        asyncio.gather(*(admin.workflow_result(ctx.run_id) for ctx in contexts)), 60
    )
    stop.set()
    await runner
    assert results == [0, 1, 4, 9, 16]


async def test_a_run_held_by_a_live_executor_cannot_be_taken_over(admin):
    @workflow
    async def held(ctx: PyWorkflow, _: None) -> None:
        return None

    ctx = await admin.create_workflow("held", None)
    with pytest.raises(pgqrs.RunBusy, match="lease"):
        await admin.resume_workflow(ctx.run_id)
    await held(ctx, None)
    with pytest.raises(pgqrs.IllegalTransition, match="succeeded"):
        await admin.resume_workflow(ctx.run_id)
    with pytest.raises(pgqrs.RunNotFound):
        await admin.resume_workflow(424242)


async def test_a_replay_that_calls_other_steps_is_refused(admin):
    @step
    async def first(ctx: PyWorkflow, n: int) -> int:
        return n

    @step
    async def boom(ctx: PyWorkflow) -> None:
        raise ValueError("stop here")

    @workflow
    async def changing(ctx: PyWorkflow, n: int) -> int:
        await first(ctx, n)
        await boom(ctx)
        return n

    ctx = await admin.create_workflow("changing", 1)
    with pytest.raises(ValueError):
        await changing(ctx, 1)
    admin.retry_workflow(ctx.run_id)
    again = await admin.next_workflow("changing")
    with pytest.raises(pgqrs.WorkflowDiverged, match="first"):
        await changing(again, 2)  # another input than the recorded call


async def test_cancel_stops_the_executor_from_recording(admin, dsn):
    ran = []

    @step
    async def work(ctx: PyWorkflow, i: int) -> int:
        ran.append(i)
        return i

    @workflow
    async def cancellable(ctx: PyWorkflow, _: None) -> None:
        await work(ctx, 1)
        admin.cancel_workflow(ctx.run_id)
        await work(ctx, 2)

    ctx = await admin.create_workflow("cancellable", None)
    with pytest.raises(pgqrs.LeaseLost):
        await cancellable(ctx, None)
    assert admin.workflow_status(ctx.run_id) == "cancelled"
    assert ran == [1, 2]  # the step in flight ran, but its output was not recorded
    assert psql("SELECT string_agg(input::text, ',') FROM pgqrs.steps", dsn.rsplit("/", 1)[1]) == "[1]"
    with pytest.raises(pgqrs.Cancelled):
        await admin.workflow_result(ctx.run_id)


async def test_steps_need_the_run_context_and_json_values(admin):
    @step
    async def needs_ctx(ctx: PyWorkflow, x: int) -> int:
        return x

    with pytest.raises(TypeError, match="PyWorkflow"):
        await needs_ctx("not a context", 1)

    @step
    async def returns_object(ctx: PyWorkflow) -> object:
        return object()

    @workflow
    async def bad_output(ctx: PyWorkflow, _: None) -> None:
        await returns_object(ctx)

    ctx = await admin.create_workflow("bad_output", None)
    with pytest.raises(pgqrs.InvalidArgument, match="JSON-serializable"):
        await bad_output(ctx, None)
    assert admin.workflow_status(ctx.run_id) == "failed"
