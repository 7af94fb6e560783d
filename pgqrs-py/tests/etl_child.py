"""A workflow process for the fault tests: `python etl_child.py create` starts one run and
executes it; `python etl_child.py work` executes pending runs with `run_workflows`.
Every step body appends a line to $PGQRS_LOG; with $PGQRS_HANG set, `transform` hangs."""

from __future__ import annotations

import asyncio
import os
import sys

import pgqrs
from pgqrs import PyWorkflow
from pgqrs.decorators import step, workflow


def log(line: str) -> None:
    with open(os.environ["PGQRS_LOG"], "a") as f:
        f.write(line + "\n")


@step
async def extract(ctx: PyWorkflow, source: str) -> dict:
    log(f"extract {ctx.run_id}")
    return {"source": source, "rows": [1, 2, 3]}


@step
async def transform(ctx: PyWorkflow, data: dict) -> int:
    log(f"transform-start {ctx.run_id}")
    if os.environ.get("PGQRS_HANG"):
        await asyncio.sleep(3600)
    log(f"transform-end {ctx.run_id}")
    return sum(data["rows"])


@step
async def load(ctx: PyWorkflow, total: int) -> int:
    log(f"load {ctx.run_id}")
    return total * 10


@workflow
async def etl(ctx: PyWorkflow, source: str) -> int:
    data = await extract(ctx, source)
    total = await transform(ctx, data)
    return await load(ctx, total)


# Short enough for the tests to wait out, long enough to outlast a loaded machine's delays.
LEASE = 3.0


def admin() -> pgqrs.Admin:
    config = pgqrs.Config.from_dsn(os.environ["PGQRS_DSN"]).with_visibility_timeout(LEASE)
    return pgqrs.Admin(config)


async def main(mode: str) -> None:
    if mode == "create":
        ctx = await admin().create_workflow("etl", "s3://bucket/orders.csv")
        print(ctx.run_id, flush=True)
        await etl(ctx, ctx.input)
    else:
        await pgqrs.run_workflows(admin(), etl, concurrency=20, poll_interval=0.1, until_idle=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
