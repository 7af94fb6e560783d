"""The queue API: the seed's snippet, batch and async forms, errors, dead letters."""

from __future__ import annotations

import json
import runpy
import time
from pathlib import Path

import pytest

import pgqrs

from conftest import psql

SEED = Path(__file__).parent / "seed_queue.py"


def test_the_seed_queue_snippet_runs_as_written(dsn, monkeypatch, capsys):
    monkeypatch.setenv("PGQRS_DSN", dsn)
    runpy.run_path(str(SEED), run_name="__main__")
    out = capsys.readouterr().out
    assert "Enqueued message: 1" in out
    assert "Processing: {'task': 'send_email', 'to': 'user@example.com'}" in out
    archived = psql("SELECT outcome FROM pgqrs.archive", dsn.rsplit("/", 1)[1])
    assert archived == "completed"


def test_payloads_may_be_json_text_or_python_values(admin, config):
    admin.create_queue("tasks")
    producer = pgqrs.Producer(config, "tasks")
    producer.enqueue(json.dumps({"n": 1}))
    producer.enqueue({"n": 2})
    producer.enqueue([3, "three"])
    consumer = pgqrs.Consumer(config, "tasks")
    payloads = [m.payload for m in consumer.dequeue_batch(10)]
    assert payloads == [{"n": 1}, {"n": 2}, [3, "three"]]


def test_a_str_that_is_not_json_is_refused_with_advice(admin, config):
    admin.create_queue("tasks")
    with pytest.raises(pgqrs.InvalidArgument, match="not valid JSON"):
        pgqrs.Producer(config, "tasks").enqueue("send an email")
    with pytest.raises(pgqrs.InvalidArgument, match="not JSON-serializable"):
        pgqrs.Producer(config, "tasks").enqueue({"when": object()})
    assert admin.queue_stats("tasks").ready == 0


def test_batches_enqueue_claim_and_archive_in_one_call_each(admin, config):
    admin.create_queue("tasks")
    producer = pgqrs.Producer(config, "tasks")
    enqueued = producer.enqueue_batch([{"i": i} for i in range(250)])
    assert len({e.id for e in enqueued}) == 250
    consumer = pgqrs.Consumer(config, "tasks")
    seen = []
    while batch := consumer.dequeue_batch(100):
        consumer.archive_batch([m.id for m in batch], "done")
        seen.extend(m.payload["i"] for m in batch)
    assert sorted(seen) == list(range(250))
    stats = admin.queue_stats("tasks")
    assert (stats.ready, stats.leased, stats.dead) == (0, 0, 0)


async def test_async_variants_do_the_same_work(admin, config):
    await admin.install_async()
    await admin.create_queue_async("tasks")
    producer = pgqrs.Producer(config, "tasks")
    first = await producer.enqueue_async({"n": 1}, priority=5)
    await producer.enqueue_batch_async([{"n": 2}, {"n": 3}])
    consumer = pgqrs.Consumer(config, "tasks")
    msg = await consumer.dequeue_async()
    assert (msg.id, msg.payload, msg.priority) == (first.id, {"n": 1}, 5)
    await consumer.archive_async(msg.id, "completed")
    two, three = await consumer.dequeue_batch_async(10)
    expiry = await consumer.extend_async(two.id, 600)
    assert expiry > two.lease_expires_at
    await consumer.delete_async(two.id)
    assert await consumer.nack_async(three.id, 0.0, "later") is True
    again = await consumer.dequeue_async()
    assert (again.id, again.attempts) == (three.id, 2)
    await consumer.archive_batch_async([again.id])
    stats = admin.queue_stats("tasks")
    assert (stats.ready, stats.leased) == (0, 0)


def test_unknown_queues_and_hostile_names_raise_typed_errors(admin, config):
    with pytest.raises(pgqrs.QueueNotFound, match="nope"):
        pgqrs.Producer(config, "nope")
    with pytest.raises(pgqrs.QueueNotFound):
        pgqrs.Consumer(config, "nope")
    for name in ["tasks; DROP TABLE pgqrs.jobs", "", "a" * 100, "Tasks"]:
        with pytest.raises(pgqrs.InvalidQueueName):
            admin.create_queue(name)
    assert issubclass(pgqrs.QueueNotFound, pgqrs.PgqrsError)


def test_a_database_without_the_schema_says_so(dsn):
    admin = pgqrs.Admin(dsn)
    with pytest.raises(pgqrs.NotInstalled, match="install"):
        admin.verify()
    with pytest.raises(pgqrs.NotInstalled):
        admin.create_queue("tasks")
    admin.install()
    admin.install()  # idempotent
    admin.verify()


def test_an_expired_lease_taken_over_raises_lease_lost(admin, config):
    admin.create_queue("tasks")
    pgqrs.Producer(config, "tasks").enqueue({"n": 1})
    slow = pgqrs.Consumer(config, "tasks", visibility_timeout=0.2)
    fast = pgqrs.Consumer(config, "tasks")
    msg = slow.dequeue()
    time.sleep(0.4)
    again = fast.dequeue()
    assert again is not None and again.id == msg.id and again.attempts == 2
    with pytest.raises(pgqrs.LeaseLost):
        slow.archive(msg.id, "completed")
    fast.archive(again.id, "completed")


def test_nack_retries_then_dead_letters_with_the_reason(admin, config):
    admin.create_queue("tasks", max_attempts=2)
    pgqrs.Producer(config, "tasks").enqueue({"n": 1})
    consumer = pgqrs.Consumer(config, "tasks")
    assert consumer.nack(consumer.dequeue().id, 0.0, "boom 1") is True
    assert consumer.nack(consumer.dequeue().id, 0.0, "boom 2") is False
    [dead] = admin.dead_letters("tasks")
    assert dead.payload == {"n": 1} and "boom 2" in dead.reason and dead.attempts == 2
    assert admin.redrive("tasks") == [dead.id]
    assert consumer.dequeue().payload == {"n": 1}


def test_delay_and_admin_views(admin, config):
    admin.create_queue("tasks")
    producer = pgqrs.Producer(config, "tasks")
    producer.enqueue({"later": True}, delay=60)
    assert pgqrs.Consumer(config, "tasks").dequeue() is None
    stats = admin.queue_stats("tasks")
    assert (stats.ready, stats.delayed) == (0, 1)
    assert [q.name for q in admin.list_queues()] == ["tasks"]
    assert admin.purge_queue("tasks") == 1


def test_a_password_never_shows(dsn):
    secret = dsn.replace("postgres@", "postgres:hunter2@")
    config = pgqrs.Config.from_dsn(secret)
    assert "hunter2" not in repr(config)
    with pytest.raises(pgqrs.InvalidDsn) as err:
        pgqrs.Config.from_dsn("mysql://root:hunter2@localhost/db")
    assert "hunter2" not in str(err.value)
