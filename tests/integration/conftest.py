"""Integration fixtures: real Kafka, a real MongoDB-protocol server and real MinIO.

Servers come from, in order: the THREADLINE_* endpoint variables (what `./threadline test`
exports), Testcontainers when a Docker engine is reachable, or the local stack started
here. Services run in-process (their real lifespan: Kafka consumers, outbox, indexes),
each with its own database and consumer group so runs never see each other's state.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from threadline.contracts import Envelope, decode, new_event
from threadline.contracts.events.directory import AccountUpserted, StaffMemberUpserted
from threadline.devtools.seed import demo_directory, publish
from threadline.devtools.token import mint_token

ENDPOINT_VARS = (
    "THREADLINE_KAFKA_BOOTSTRAP_SERVERS",
    "THREADLINE_MONGODB_URL",
    "THREADLINE_S3_ENDPOINT",
)
T = TypeVar("T")


def _docker_reachable() -> bool:
    try:
        import docker  # noqa: PLC0415 - only with the optional containers group

        docker.from_env().ping()
    except Exception:  # no client library or no engine: fall back to the local stack
        return False
    return True


@pytest.fixture(scope="session")
def endpoints() -> Iterator[dict[str, str]]:
    if all(os.environ.get(name) for name in ENDPOINT_VARS):
        yield {k: v for k, v in os.environ.items() if k.startswith("THREADLINE_")}
        return
    if os.environ.get("PYTEST_XDIST_WORKER"):
        pytest.fail(
            "parallel workers (-n) each would start their own servers: start them first "
            f'(`./threadline servers`, then `eval "$(./threadline env)"`) or set {ENDPOINT_VARS}'
        )
    if _docker_reachable():
        from .containers import container_endpoints  # noqa: PLC0415 - needs testcontainers

        with container_endpoints() as found:
            yield found
        return
    from threadline.devtools.stack import LocalStack  # noqa: PLC0415

    stack = LocalStack()
    started = stack.servers()
    if "kafka" in started:
        os.environ[KAFKA_RESTARTABLE] = "1"
    for server in {"mongodb", "minio"} & set(started):
        os.environ[restartable(server)] = "1"
    try:
        yield {**stack.endpoints(), "THREADLINE_STATE_DIR": str(stack.config.state_dir)}
    finally:
        if started:
            stack.stop(*started)


TOPIC_PREFIX_VARIABLE = "THREADLINE_KAFKA_TOPIC_PREFIX"


def run_topic(catalogue_topic: str) -> str:
    """This run's Kafka name of a catalogue topic: under pytest-xdist each worker has its own
    topic prefix (set by ``_service_environment``), so a worker's services never react to
    the threads and events of tests running on another worker."""
    return os.environ.get(TOPIC_PREFIX_VARIABLE, "") + catalogue_topic


@pytest.fixture(scope="session", autouse=True)
def _service_environment(endpoints: dict[str, str]) -> Iterator[None]:
    """Services read their settings from the environment, like in production."""
    saved = dict(os.environ)
    os.environ.update(endpoints)
    os.environ["THREADLINE_ENV"] = "test"
    # In-process apps get their settings as objects, which a bulk worker process (reading
    # the environment) would not see: they work bulk jobs on their own loop. The tests that
    # run messaging as a real process ask for the worker process.
    os.environ["MESSAGING_BULK_WORKER"] = "in-process"
    if worker := os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ[TOPIC_PREFIX_VARIABLE] = f"test-{worker}."
    yield
    os.environ.clear()
    os.environ.update(saved)


def restartable(server: str) -> str:
    """The variable that lets tests stop and restart ``server`` (see KAFKA_RESTARTABLE)."""
    return f"THREADLINE_TEST_MAY_RESTART_{server.upper()}"


KAFKA_RESTARTABLE = restartable("kafka")
"""Set to 1 (by ``./threadline test`` when it started Kafka itself, or by ``endpoints`` when
it started the local stack) to let tests stop and restart the broker: a Kafka that was
already running may serve other people's runs."""


def require_restart_marker(request: pytest.FixtureRequest) -> None:
    """A test that stops a shared server must say so, or it would run beside other tests
    (``./threadline test`` runs the marked ones alone, after the rest)."""
    if request.node.get_closest_marker("restarts_servers") is None:
        pytest.fail(f"{request.node.nodeid} restarts a server: mark it restarts_servers")


@pytest.fixture
def kafka_control(request: pytest.FixtureRequest, endpoints: dict[str, str]) -> Any:
    """The local stack that runs Kafka, for tests that stop and restart the broker."""
    from threadline.devtools.stack import LocalStack  # noqa: PLC0415

    require_restart_marker(request)

    if os.environ.get(KAFKA_RESTARTABLE) != "1":
        pytest.skip(f"Kafka was running before this run (may be shared); {KAFKA_RESTARTABLE}=1")
    stack = LocalStack(state_dir=endpoints.get("THREADLINE_STATE_DIR"))
    if stack.endpoints()["THREADLINE_KAFKA_BOOTSTRAP_SERVERS"] != endpoints[
        "THREADLINE_KAFKA_BOOTSTRAP_SERVERS"
    ] or not stack.is_running("kafka"):
        pytest.skip("Kafka is not run by this machine's local stack, so it cannot be restarted")
    return stack


@pytest.fixture
def run_id() -> str:
    return uuid.uuid4().hex[:10]


ServiceFactory = Callable[..., Awaitable[tuple[FastAPI, httpx.AsyncClient]]]


async def start_app(
    stack: AsyncExitStack, name: str, run_id: str, **overrides: Any
) -> tuple[FastAPI, httpx.AsyncClient]:
    """Start service ``name`` with its real lifespan inside ``stack``; return the app and an
    HTTP client once it is ready. Its fresh consumer group starts at the topics' end (not
    their history) and readiness waits for its partitions, so events published afterwards
    all reach it. The service's database is dropped when ``stack`` closes."""
    module = __import__(f"threadline.{name}.main", fromlist=["create_app"])
    settings_module = __import__(f"threadline.{name}.settings", fromlist=["Settings"])
    settings = settings_module.Settings(
        mongodb_database=f"it_{name}_{run_id}",
        consumer_group=f"it-{name}-{run_id}",
        outbox_relay_interval_seconds=0.3,
        outbox_relay_grace_seconds=1.0,
        consumer_backoff_seconds=0.05,
        consumer_start="latest",
        **overrides,
    )
    app = module.create_app(settings)
    # Shutdown may take up to the service's SHUTDOWN_DEADLINE_SECONDS (stop consuming, drain
    # the outbox); asgi-lifespan's default of 5 s would cut a busy service short.
    manager = await stack.enter_async_context(
        LifespanManager(app, startup_timeout=60, shutdown_timeout=60)
    )
    transport = httpx.ASGITransport(app=manager.app)
    client = await stack.enter_async_context(
        httpx.AsyncClient(transport=transport, base_url=f"http://{name}")
    )
    stack.push_async_callback(_drop_database, app)
    await eventually(lambda: client.get("/readyz"), until=lambda r: r.status_code == 200)
    return app, client


@pytest.fixture
async def start_service(run_id: str) -> AsyncIterator[ServiceFactory]:
    """``await start_service(name, **settings)``: a ready service for this test (start_app)."""
    async with AsyncExitStack() as stack:

        async def start(name: str, **overrides: Any) -> tuple[FastAPI, httpx.AsyncClient]:
            return await start_app(stack, name, run_id, **overrides)

        yield start


ModuleServices = Callable[..., Awaitable[tuple[FastAPI, httpx.AsyncClient]]]


@pytest.fixture(scope="module")
async def module_services() -> AsyncIterator[ModuleServices]:
    """``await module_services(name, replica=1)``: a service shared by the tests of one module,
    started on first use (replicas of one name share its database and group). Starting a
    service and waiting for its consumer group is most of an integration test's cost.

    Only for tests that seed nothing through Kafka: a long-lived service consumes every
    directory event other runs publish on a shared Kafka, and on the shared FerretDB it
    fell minutes behind with four suites running, so a test seeding its own firm waited
    behind that backlog; a service started per test begins at the topics' end instead."""
    run_id = uuid.uuid4().hex[:10]
    started: dict[tuple[str, int], tuple[FastAPI, httpx.AsyncClient]] = {}
    async with AsyncExitStack() as stack:

        async def start(name: str, *, replica: int = 1) -> tuple[FastAPI, httpx.AsyncClient]:
            if (name, replica) not in started:
                started[name, replica] = await start_app(stack, name, run_id)
            return started[name, replica]

        yield start


@pytest.fixture
async def serve_http() -> AsyncIterator[Callable[[FastAPI], Awaitable[str]]]:
    """Serve an already started app on a real loopback port (for WebSockets); returns its URL."""
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def serve(app: FastAPI) -> str:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        servers.append((server, task))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield serve
    for server, _ in servers:
        server.should_exit = True
    await asyncio.gather(*(task for _, task in servers))


async def _drop_database(app: FastAPI) -> None:
    runtime = app.state.runtime
    await runtime.mongo.drop_database(runtime.database.name)


LEE = "acc_lee_family"  # contacts: ct_ann_lee (notify), ct_ben_lee; assigned: st_mia
PATEL = "acc_patel_llc"  # ct_raj_patel activated, ct_priya_patel not; assigned: st_noah
LIAM = "st_liam"
"""A team member outside the demo directory's four (``liam_upserted`` adds him), assigned to
PATEL only, so being mentioned is his only way into a LEE thread: "unassigned member" and
"member with view-all" are both st_noah, so mentioning st_noah would also let the unassigned
member in."""

DEMO_USERS: dict[str, Callable[[str], str]] = {
    "owner": lambda firm: token_for(firm, role="owner", sub="st_olivia", name="Olivia"),
    "admin": lambda firm: token_for(firm, role="admin", sub="st_adam"),
    "assigned member": lambda firm: token_for(
        firm, role="member", sub="st_mia", accounts=[LEE], name="Mia Chen"
    ),
    "unassigned member": lambda firm: token_for(
        firm, role="member", sub="st_noah", accounts=[PATEL]
    ),
    "member with view-all": lambda firm: token_for(
        firm, role="member", sub="st_noah", perms=["view_all_accounts"], name="Noah"
    ),
    "mentioned member": lambda firm: token_for(
        firm, role="member", sub=LIAM, accounts=[PATEL], name="Liam"
    ),
    "client": lambda firm: token_for(
        firm, kind="client", sub="ct_ann_lee", accounts=[LEE], name="Ann"
    ),
    "second client": lambda firm: token_for(
        firm, kind="client", sub="ct_ben_lee", accounts=[LEE], name="Ben"
    ),
    "other client": lambda firm: token_for(
        firm, kind="client", sub="ct_raj_patel", accounts=[PATEL]
    ),
    "other firm": lambda firm: token_for(f"{firm}_other", role="owner", sub="st_olivia"),
}
"""A token per kind of user of a firm seeded with the demo directory (``seed_directory``),
by the names the tests and access matrices use."""


def liam_upserted(firm: str) -> Envelope[Any]:
    """The directory event that adds ``LIAM`` to ``firm`` (``seed_directory(extra=...)``)."""
    liam = StaffMemberUpserted(
        user_id=LIAM, name="Liam Park", email="liam@firm.example", role="member"
    )
    return new_event(liam, firm=firm, key=firm, producer="test")


@dataclass
class FirmClient:
    """A firm on a running service, calling it as one of its users: by default the demo
    directory's (``DEMO_USERS``); subclasses add or replace users in ``token``."""

    firm: str
    http: httpx.AsyncClient
    app: FastAPI

    def token(self, who: str) -> str:
        if who not in DEMO_USERS:
            raise KeyError(f"{type(self).__name__} names no user {who!r}")
        return DEMO_USERS[who](self.firm)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(who)}"}

    async def call(
        self,
        who: str,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        return await self.http.request(
            method, url, headers=self.auth(who) | (headers or {}), **kwargs
        )


@dataclass
class TopicMark:
    """Where a topic ended at some moment: reading from here finds what came after, without
    scanning everything a long-lived Kafka has accumulated."""

    bootstrap: str
    offsets: dict[TopicPartition, int]


async def mark_topic(bootstrap: str, catalogue_topic: str) -> TopicMark:
    """The end offsets of a catalogue topic (this run's name of it, ``topic``) now."""
    topic = run_topic(catalogue_topic)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # All topics' metadata (naming the topic could auto-create it).
        [described] = [t for t in await admin.describe_topics() if t["topic"] == topic]
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        offsets = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return TopicMark(bootstrap=bootstrap, offsets=dict(offsets))


async def find_record(
    mark: TopicMark, matches: Callable[[ConsumerRecord[bytes, bytes]], bool], *, within: float = 60
) -> ConsumerRecord[bytes, bytes]:
    """The first record after ``mark`` (in each partition's order) that ``matches``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=mark.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(mark.offsets))
        for partition, offset in mark.offsets.items():
            consumer.seek(partition, offset)
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    if matches(record):
                        return record
    finally:
        await consumer.stop()
    raise AssertionError(f"no matching record after {mark.offsets} within {within}s")


async def keyed_events(
    mark: TopicMark,
    key: str,
    *,
    until: Callable[[list[Envelope[Any]]], bool],
    linger: float = 1.0,
    within: float = 60.0,
) -> list[Envelope[Any]]:
    """Every distinct event keyed ``key`` published after ``mark``, read until ``until``
    holds, then ``linger`` seconds more (so an extra event would be seen). Delivery is at
    least once (the outbox relay may republish an event its publisher had not cleared yet),
    so copies of one event id count once, as consumers count them. Reading from the mark,
    not the topic's start, keeps this as fast on a Kafka that has served many runs."""
    consumer = AIOKafkaConsumer(bootstrap_servers=mark.bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: list[Envelope[Any]] = []
    seen: set[uuid.UUID] = set()
    clock = asyncio.get_running_loop().time
    deadline, settled_at = clock() + within, None
    try:
        consumer.assign(list(mark.offsets))
        for partition, offset in mark.offsets.items():
            consumer.seek(partition, offset)
        while clock() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for record in records:
                    if record.key is None or record.key.decode() != key:
                        continue
                    event = decode(record.value)
                    if event.id not in seen:
                        seen.add(event.id)
                        found.append(event)
            if settled_at is None and until(found):
                settled_at = clock()
            if settled_at is not None and clock() - settled_at >= linger:
                return found
    finally:
        await consumer.stop()
    raise AssertionError(f"condition on the events of {key} not met: {[e.type for e in found]}")


async def seed_directory(
    apps: Iterable[FastAPI],
    firm: str,
    *,
    extra: Sequence[Envelope[Any]] = (),
    within: float = 45.0,
) -> None:
    """Publish the demo directory of ``firm`` (plus ``extra`` events) and wait until every
    app's directory projection holds all its accounts and staff."""
    events = [*demo_directory(firm), *extra]
    apps = list(apps)
    await publish(apps[0].state.runtime.settings.kafka_bootstrap_servers, events)
    expected = (
        len({e.data.account_id for e in events if e.type == AccountUpserted.event_type}),
        len({e.data.user_id for e in events if e.type == StaffMemberUpserted.event_type}),
    )
    for app in apps:
        database = app.state.runtime.database

        async def projected(database: Any = database) -> tuple[int, int]:
            return (
                await database["directory_accounts"].count_documents({"firm": firm}),
                await database["directory_staff"].count_documents({"firm": firm}),
            )

        await eventually(projected, until=lambda counts: counts == expected, within=within)


def token_for(firm: str, *, kind: str = "staff", role: str | None = "owner", **claims: Any) -> str:
    return mint_token(
        firm=firm,
        kind=kind,
        role=role if kind == "staff" else None,
        sub=claims.pop("sub", "st_owner" if kind == "staff" else "ct_client"),
        secret=os.environ["THREADLINE_JWT_SECRET"],
        issuer=os.environ["THREADLINE_JWT_ISSUER"],
        audience=os.environ["THREADLINE_JWT_AUDIENCE"],
        **claims,
    )


async def eventually(
    probe: Callable[[], Awaitable[T]], *, until: Callable[[T], bool], within: float = 45.0
) -> T:
    """Poll ``probe`` until ``until`` holds; fail with the last value after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await probe()
        if until(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition not met within {within}s; last value: {value!r}")
        await asyncio.sleep(0.2)
