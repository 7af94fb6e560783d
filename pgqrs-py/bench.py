"""Binding overhead: the same queue work driven from Python and from Rust, in one process,
on one database. Usage: python bench.py [--quick] [DSN of a server]

Each scenario enqueues N jobs in batches and drains them (claim a batch, archive it),
first through the Python API, then through the same pgqrs calls made in Rust
(`pgqrs._pgqrs.bench_rust`); rounds alternate and the median is printed.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import pgqrs
from pgqrs._pgqrs import bench_rust

PAYLOAD = {"task": "send_email", "to": "user@example.com", "attempt": 1}


def python_round(config: pgqrs.Config, queue: str, jobs: int, batch: int) -> tuple[float, float]:
    producer = pgqrs.Producer(config, queue)
    payloads = [PAYLOAD] * batch
    start = time.perf_counter()
    for _ in range(jobs // batch):
        if batch == 1:
            producer.enqueue(PAYLOAD)
        else:
            producer.enqueue_batch(payloads)
    enqueue = jobs / (time.perf_counter() - start)
    consumer = pgqrs.Consumer(config, queue)
    drained = 0
    start = time.perf_counter()
    while claimed := consumer.dequeue_batch(batch):
        consumer.archive_batch([m.id for m in claimed], "completed")
        drained += len(claimed)
    assert drained == jobs, (drained, jobs)
    return enqueue, drained / (time.perf_counter() - start)


def main() -> None:
    quick = "--quick" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--quick"]
    server = args[0] if args else "postgresql://postgres@127.0.0.1:5432"
    database = "pgqrs_bench_py"
    subprocess.run(["psql", f"{server}/postgres", "-Xq", "-c", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)",
                    "-c", f"CREATE DATABASE {database}"], check=True)
    config = pgqrs.Config.from_dsn(f"{server}/{database}")
    admin = pgqrs.Admin(config)
    admin.install()
    rounds = 1 if quick else 5
    scenarios = [("batch 100", 2_000 if quick else 20_000, 100), ("batch 1", 200 if quick else 2_000, 1)]
    print(f"{'scenario':<12} {'op':<8} {'python jobs/s':>14} {'rust jobs/s':>12} {'py/rust':>8}")
    for label, jobs, batch in scenarios:
        py_q, rs_q = f"py-{batch}", f"rs-{batch}"
        admin.create_queue(py_q)
        admin.create_queue(rs_q)
        py, rs = [], []
        for _ in range(rounds):
            py.append(python_round(config, py_q, jobs, batch))
            rs.append(bench_rust(config, rs_q, json.dumps(PAYLOAD), jobs, batch))
        for i, op in enumerate(["enqueue", "drain"]):
            p = statistics.median(r[i] for r in py)
            r = statistics.median(r[i] for r in rs)
            print(f"{label:<12} {op:<8} {p:>14,.0f} {r:>12,.0f} {p / r:>7.2f}x")
    subprocess.run(["psql", f"{server}/postgres", "-Xq", "-c", f"DROP DATABASE {database} WITH (FORCE)"], check=True)


if __name__ == "__main__":
    main()
