"""The local stack's PostgreSQL (under FerretDB) keeps FerretDB's queries on their indexes
while a collection grows from empty (stack/ferretdb/main.go explains both settings), and
runs the batch role's queries at a lower CPU priority (stack/ferretdb/priority.go).

FerretDB prepares every query it sends, with the filter's field names as parameters
(``_jsonb -> $1 @> $2``). These tests send that shape straight to the stack's PostgreSQL
with ``psql`` (FerretDB's ``explain`` plans a fresh statement, so it cannot show what a
prepared one runs). Skipped where the services run on another MongoDB-protocol server.
"""

import json
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from threadline.devtools.stack.config import BATCH_ROLE, StackConfig
from threadline.devtools.stack.install import POSTGRES_BIN

pytestmark = pytest.mark.integration

LOOKUP = "select _jsonb from {table} where _jsonb -> {0} @> {1} and _jsonb -> {2} @> {3}"
"""FerretDB's find of ``{_id, firm}`` (a thread of a firm)."""
LOOKUP_ARGS = ("'_id'", "'\"a\"'", "'firm'", "'\"f\"'")
PSQL_OPTIONS = ("-d", "postgres", "-Atq", "-v", "ON_ERROR_STOP=1", "-f", "-")
"""Unaligned rows without headers or command tags; the script from standard input."""
STATISTICS_WAIT_SECONDS = 15.0
"""How long autovacuum may take to analyze a grown table (its nap is 1 s on the stack)."""


def _postgres() -> tuple[Path, int]:
    psql, port = POSTGRES_BIN / "psql", StackConfig.from_env().ports["postgres"]
    if not psql.is_file():
        pytest.skip("no local stack PostgreSQL on this machine")
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        pytest.skip("the local stack's PostgreSQL is not running")
    return psql, port


def _sql(script: str) -> list[str]:
    """Run ``script`` in one session, each statement on its own; the rows it printed."""
    psql, port = _postgres()
    done = subprocess.run(
        [str(psql), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", *PSQL_OPTIONS],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.splitlines()


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _plan_nodes(child))]


def _index_conditions(explained: str) -> list[str]:
    """The index conditions of an ``EXPLAIN (FORMAT JSON)`` plan; none means a scan."""
    plan = json.loads(explained)[0]["Plan"]
    return [node["Index Cond"] for node in _plan_nodes(plan) if "Index Cond" in node]


@pytest.fixture
def table() -> Any:
    """A collection as FerretDB stores one: a jsonb column, btree indexes on fields (the
    stack's trigger adds their GIN twins), one document, analyzed while that small."""
    schema = f"it_plans_{uuid.uuid4().hex[:8]}"
    name = f"{schema}.things"
    _sql(
        f"create schema {schema}; create table {name} (_jsonb jsonb);"
        f"create unique index on {name} ((_jsonb -> '_id'));"
        f"create index on {name} ((_jsonb -> 'firm'));"
        f"""insert into {name} values ('{{"_id": "a", "firm": "f"}}'); analyze {name};"""
    )
    try:
        yield name
    finally:
        _sql(f"drop schema {schema} cascade")


def _grow(table: str) -> str:
    return (
        f"insert into {table} select jsonb_build_object('_id', 'x' || g, 'firm', 'f') "
        "from generate_series(1, 10000) g;"
    )


def test_a_prepared_lookup_is_planned_for_its_parameters_after_its_collection_grew(
    table: str,
) -> None:
    """Without ``plan_cache_mode=force_custom_plan`` the sixth execution on the one-document
    collection takes the generic plan (a sequential scan: no index matches ``-> $1``) and
    keeps it after 10,000 more documents."""
    lookup = LOOKUP.format("$1", "$2", "$3", "$4", table=table)
    rows = _sql(
        f"prepare lookup(text, jsonb, text, jsonb) as {lookup};"
        + f"execute lookup({', '.join(LOOKUP_ARGS)});" * 8
        + _grow(table)
        + f"explain (format json) execute lookup({', '.join(LOOKUP_ARGS)});"
        + "select generic_plans from pg_prepared_statements where name = 'lookup';"
    )
    generic_plans, explained = int(rows[-1]), "\n".join(rows[rows.index("[") : -1])
    assert generic_plans == 0
    assert _index_conditions(explained), explained


def test_statistics_follow_a_growing_collection_within_seconds(table: str) -> None:
    """With the one-document statistics, the lookup by ``{_id, firm}`` goes through the
    ``firm`` index (every document of the firm, each checked for its ``_id``); once
    autovacuum analyzed the grown table it takes the ``_id`` index alone."""
    _sql(_grow(table))
    lookup = LOOKUP.format(*LOOKUP_ARGS, table=table)
    deadline = time.monotonic() + STATISTICS_WAIT_SECONDS
    while True:
        conditions = _index_conditions("\n".join(_sql(f"explain (format json) {lookup}")))
        if conditions and not any("firm" in condition for condition in conditions):
            break
        assert time.monotonic() < deadline, f"still planned with stale statistics: {conditions}"
        time.sleep(0.5)
    assert all("_id" in condition for condition in conditions), conditions


def test_twins_are_made_for_ascending_fields_and_not_for_descending_sort_keys(
    table: str,
) -> None:
    """An index like messaging's ``(firm, last_activity_at desc)``: ``firm`` gets a GIN
    twin for FerretDB's ``@>`` equalities, the descending sort key none (it would only
    cost every insert and every update of the thread's activity time)."""
    _sql(f"create index on {table} ((_jsonb -> 'firm'), (_jsonb -> 'at') desc);")
    schema, name = table.split(".")
    twins = _sql(
        "select indexdef from pg_indexes where indexdef like '%USING gin%'"
        f" and schemaname = '{schema}' and tablename = '{name}';"
    )
    assert any("'firm'" in twin for twin in twins), twins
    assert any("'_id'" in twin for twin in twins), twins
    assert not any("'at'" in twin for twin in twins), twins


def _niceness(pid: int) -> int | None:
    """None for a backend that ended since it was listed."""
    try:
        return os.getpriority(os.PRIO_PROCESS, pid)
    except ProcessLookupError:
        return None


def test_batch_writes_reach_the_same_database_through_lower_priority_backends() -> None:
    """What the bulk worker writes through ``THREADLINE_MONGODB_BATCH_URL`` is read back
    through ``THREADLINE_MONGODB_URL``; the PostgreSQL backends serving the batch role run
    at niceness 10, the requests' at the server's own (0 unless it was started niced)."""
    _postgres()
    batch_url = os.environ.get("THREADLINE_MONGODB_BATCH_URL")
    if batch_url is None:
        pytest.skip("no batch MongoDB URL configured")
    database = f"it_batch_{uuid.uuid4().hex[:8]}"
    batch: MongoClient[dict[str, Any]] = MongoClient(batch_url)
    interactive: MongoClient[dict[str, Any]] = MongoClient(os.environ["THREADLINE_MONGODB_URL"])
    try:
        logged_in = batch.admin.command("connectionStatus")["authInfo"]["authenticatedUsers"]
        assert [user["user"] for user in logged_in] == [BATCH_ROLE]  # so FerretDB's pool of it
        batch[database]["things"].insert_one({"_id": "written in a batch"})
        assert interactive[database]["things"].find_one() == {"_id": "written in a batch"}
        backends = [
            row.split("|")
            for row in _sql(
                "select usename, pid from pg_stat_activity where backend_type = 'client backend';"
            )
        ]
        niceness = {
            (user, nice) for user, pid in backends if (nice := _niceness(int(pid))) is not None
        }
        assert {nice for user, nice in niceness if user == BATCH_ROLE} == {10}, niceness
        others = {nice for user, nice in niceness if user != BATCH_ROLE}
        assert others, niceness  # this test's own psql session at least
        assert max(others) < 10, niceness
    finally:
        interactive.drop_database(database)
        batch.close()
        interactive.close()
