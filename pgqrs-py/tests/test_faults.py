"""Fault tests: SIGKILLed workflow processes resume without re-running completed steps;
a blocking call releases the GIL and yields to Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import pgqrs

import etl_child
from conftest import psql

HERE = Path(__file__).parent


def spawn(mode: str, dsn: str, log: Path, hang: bool, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, PGQRS_DSN=dsn, PGQRS_LOG=str(log))
    env.pop("PGQRS_HANG", None)
    if hang:
        env["PGQRS_HANG"] = "1"
    return subprocess.Popen(
        [sys.executable, str(HERE / "etl_child.py"), mode], env=env, text=True, **kwargs
    )


def wait_for_lines(log: Path, prefix: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and sum(l.startswith(prefix) for l in log.read_text().splitlines()) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"{count} lines {prefix!r} did not show up in {timeout}s")


def step_counts(log: Path) -> Counter:
    return Counter(line.split()[0] for line in log.read_text().splitlines())


async def test_a_killed_executor_is_resumed_after_its_last_completed_step(dsn, tmp_path, monkeypatch):
    pgqrs.Admin(dsn).install()
    log = tmp_path / "steps.log"
    monkeypatch.setenv("PGQRS_LOG", str(log))
    monkeypatch.delenv("PGQRS_HANG", raising=False)
    child = spawn("create", dsn, log, hang=True, stdout=subprocess.PIPE)
    run_id = int(child.stdout.readline())
    wait_for_lines(log, "transform-start", 1)
    child.send_signal(signal.SIGKILL)
    child.wait()

    admin = pgqrs.Admin(pgqrs.Config.from_dsn(dsn).with_visibility_timeout(etl_child.LEASE))
    assert admin.workflow_status(run_id) == "running"
    busy = 0
    while True:  # the dead process's lease runs out within etl_child.LEASE
        try:
            ctx = await admin.resume_workflow(run_id)
            break
        except pgqrs.RunBusy:
            busy += 1
            time.sleep(0.05)
    assert busy > 0, "the lease of the killed process was not held at all"
    assert await etl_child.etl(ctx, ctx.input) == 60
    assert step_counts(log) == {"extract": 1, "transform-start": 2, "transform-end": 1, "load": 1}
    assert admin.workflow_status(run_id) == "succeeded"


def test_killed_workers_leave_runs_that_another_worker_finishes(dsn, tmp_path):
    admin = pgqrs.Admin(dsn)
    admin.install()
    runs = [admin.enqueue_workflow("etl", f"s3://bucket/{i}.csv") for i in range(12)]
    log = tmp_path / "steps.log"
    first = spawn("work", dsn, log, hang=True)
    wait_for_lines(log, "transform-start", len(runs))
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert {admin.workflow_status(r) for r in runs} == {"running"}

    time.sleep(etl_child.LEASE + 0.5)  # the killed worker's leases run out: the runs wait for a worker
    second = spawn("work", dsn, log, hang=False)
    assert second.wait(timeout=120) == 0
    assert {admin.workflow_status(r) for r in runs} == {"succeeded"}
    counts = step_counts(log)
    assert counts == {
        "extract": 12,  # never again after the kill
        "transform-start": 24,  # interrupted once, then run to the end
        "transform-end": 12,
        "load": 12,
    }


# The child restores Python's own Ctrl-C handler: a process started in the background by a
# shell without job control (`cmd &` in a script) inherits SIGINT ignored, and Python then
# installs no handler, so no KeyboardInterrupt could be raised whatever pgqrs does.
CHILD_BLOCKED = """
import signal, sys, threading, time, pgqrs
signal.signal(signal.SIGINT, signal.default_int_handler)
producer = pgqrs.Producer(sys.argv[1], "tasks")
ticks = 0
def tick():
    global ticks
    while True:
        ticks += 1
        time.sleep(0.01)
threading.Thread(target=tick, daemon=True).start()
print("blocking", flush=True)
start = time.monotonic()
try:
    producer.enqueue({"n": 1})
except KeyboardInterrupt:
    print(f"{time.monotonic() - start:.3f} {ticks}", flush=True)
    sys.exit(3)
print("not blocked", flush=True)
"""


def wait_for_lock(dsn: str, timeout: float = 30) -> None:
    """Waits until another session holds `pgqrs.jobs` in ACCESS EXCLUSIVE mode."""
    deadline = time.monotonic() + timeout
    held = (
        "SELECT count(*) FROM pg_locks WHERE relation = 'pgqrs.jobs'::regclass"
        " AND mode = 'AccessExclusiveLock' AND granted"
    )
    while psql(held, dsn.rsplit("/", 1)[1]) != "1":
        assert time.monotonic() < deadline, "the lock was never taken"
        time.sleep(0.02)


def test_a_blocking_call_releases_the_gil_and_yields_to_ctrl_c(dsn, admin):
    admin.create_queue("tasks")
    locker = subprocess.Popen(
        ["psql", dsn, "-Xqc",
         "BEGIN; LOCK TABLE pgqrs.jobs IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60); COMMIT;"],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_lock(dsn)
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD_BLOCKED, dsn], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout.readline().strip() == "blocking"
        time.sleep(1.0)
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=10)
        assert child.returncode == 3, out
        blocked_for, ticks = out.split()
        assert 1.0 <= float(blocked_for) < 3.0
        # About 100 at best; a held GIL would allow none.
        assert int(ticks) >= 20, "another thread could not run while the call blocked"
    finally:
        locker.kill()


CHILD_EXITS = """
import asyncio, sys, pgqrs
async def main():
    producer = pgqrs.Producer(sys.argv[1], "tasks")
    consumer = pgqrs.Consumer(sys.argv[1], "tasks")
    await asyncio.gather(*(producer.enqueue_async({"n": i}) for i in range(20)))
    await asyncio.gather(*(consumer.dequeue_async() for _ in range(20)))
asyncio.run(main())
"""


def test_processes_exit_cleanly_right_after_their_last_await(dsn, admin):
    # Futures complete on runtime threads; one finishing as the interpreter finalizes
    # crashed the process (SIGSEGV/SIGABRT in about 1 of 6 runs) before the atexit gate.
    admin.create_queue("tasks")
    codes = [
        subprocess.run([sys.executable, "-c", CHILD_EXITS, dsn], capture_output=True).returncode
        for _ in range(30)
    ]
    assert codes == [0] * 30
    assert admin.queue_stats("tasks").leased == 600
