"""Each test gets its own database on the local Postgres, dropped afterwards."""

from __future__ import annotations

import os
import subprocess
import uuid
from typing import Iterator

import pytest

import pgqrs

SERVER = os.environ.get("PGQRS_TEST_SERVER", "postgresql://postgres@127.0.0.1:5432")


def psql(sql: str, database: str = "postgres") -> str:
    """Runs `sql` with psql and returns its unaligned output."""
    done = subprocess.run(
        ["psql", f"{SERVER}/{database}", "-XAtqv", "ON_ERROR_STOP=1", "-c", sql],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


@pytest.fixture
def dsn() -> Iterator[str]:
    """The DSN of a fresh, empty database."""
    name = f"pgqrs_py_{uuid.uuid4().hex[:12]}"
    psql(f'CREATE DATABASE "{name}"')
    try:
        yield f"{SERVER}/{name}"
    finally:
        psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def config(dsn: str) -> pgqrs.Config:
    """A config for a fresh database with pgqrs installed."""
    config = pgqrs.Config.from_dsn(dsn)
    pgqrs.Admin(config).install()
    return config


@pytest.fixture
def admin(config: pgqrs.Config) -> pgqrs.Admin:
    return pgqrs.Admin(config)
