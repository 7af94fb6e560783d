"""Through pgbouncer in transaction mode (the poolers `.ci/poolers.sh` starts)."""

from __future__ import annotations

import os

import pytest

import pgqrs

# "<url> <mode>" per line, as `.ci/poolers.sh start` prints them.
POOLERS = [
    line.split()
    for line in os.environ.get("PGQRS_TEST_POOLERS", "").splitlines()
    if line.strip()
]


def test_an_unknown_pooler_mode_is_refused():
    config = pgqrs.Config.from_dsn("postgresql://postgres@127.0.0.1/x")
    with pytest.raises(pgqrs.InvalidArgument, match="transaction-legacy"):
        config.with_pooler("statement")
    assert "Config(" in repr(config.with_pooler("transaction-legacy"))


@pytest.mark.skipif(not POOLERS, reason="PGQRS_TEST_POOLERS is not set (.ci/run sets it)")
@pytest.mark.parametrize("url,mode", POOLERS)
def test_queues_work_through_the_pooler(config, dsn, url, mode):
    database = dsn.rsplit("/", 1)[1]
    pooled = pgqrs.Config.from_dsn(f"{url}/{database}").with_pooler(mode)
    admin = pgqrs.Admin(pooled)
    admin.create_queue("tasks")
    producer = pgqrs.Producer(pooled, "tasks")
    producer.enqueue_batch([{"i": i} for i in range(300)])
    consumer = pgqrs.Consumer(pooled, "tasks")
    seen = []
    while batch := consumer.dequeue_batch(50):
        consumer.archive_batch([m.id for m in batch], "done")
        seen.extend(m.payload["i"] for m in batch)
    assert sorted(seen) == list(range(300))
    stats = admin.queue_stats("tasks")
    assert (stats.ready, stats.leased, stats.dead) == (0, 0, 0)
