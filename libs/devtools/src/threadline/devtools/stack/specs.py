"""How each server and service is configured, launched and judged healthy.

A `Spec` is pure description: the manager starts the command, then polls `check` until it
returns without raising `NotReady`. Checks are real client round trips (a Kafka metadata
request and a consumer-group join through aiokafka, a MongoDB ping through PyMongo, MinIO's
readiness endpoint, an SMTP NOOP, a service's `/readyz`), not just an open port.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import pwd
import shutil
import smtplib
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .config import S3_ACCESS_KEY, S3_SECRET_KEY, StackConfig
from .errors import StackError
from .install import POSTGRES_BIN, java_executable
from .procs import port_open

__all__ = [
    "SERVICE_STOP_TIMEOUT",
    "STOP_TIMEOUTS",
    "NotReady",
    "Spec",
    "Stuck",
    "server_spec",
    "service_spec",
]


class NotReady(Exception):
    """The process is not (yet) healthy; the message says why."""


class Stuck(NotReady):
    """The process answers, but a part of it may not recover without a restart: the manager
    restarts it once when this lasts `Spec.restart_when_stuck_after` seconds."""


@dataclass(frozen=True, kw_only=True)
class Spec:
    """One process of the stack.

    `logs` are shown when it fails; the process's own stdout/stderr go to the last one.
    """

    name: str
    command: list[str]
    ports: tuple[int, ...]
    check: Callable[[], None]
    logs: tuple[Path, ...]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[], None] | None = None
    start_timeout: float = 60.0
    restart_when_stuck_after: float | None = None


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http_ok(url: str) -> None:
    try:
        with _NO_PROXY.open(url, timeout=3) as response:
            if response.status != 200:
                raise NotReady(f"GET {url} -> {response.status}")
    except urllib.error.HTTPError as exc:
        raise NotReady(f"GET {url} -> {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise NotReady(f"GET {url}: {exc}") from exc


def _require_port(host: str, port: int) -> None:
    if not port_open(host, port):
        raise NotReady(f"nothing listens on {host}:{port} yet")


# --- Kafka ----------------------------------------------------------------------------
_LOG4J2 = """\
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn">
  <Appenders>
    <RollingFile name="file" fileName="{log}" filePattern="{log}.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="20 MB"/></Policies>
      <DefaultRolloverStrategy max="2"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="info"><AppenderRef ref="file"/></Root>
    <Logger name="kafka.request.logger" level="warn"/>
    <Logger name="org.apache.kafka.clients" level="warn"/>
  </Loggers>
</Configuration>
"""


def _kafka_properties(cfg: StackConfig) -> str:
    host, port, ctl = cfg.host, cfg.ports["kafka"], cfg.ports["kafka_controller"]
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{host}:{ctl}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{ctl}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{ctl}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(cfg.data_dir / "kafka"),
        "auto.create.topics.enable": "true",
        "num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
        # One node: every internal topic with one replica; one partition keeps the first
        # consumer-group join fast (50 partitions of __consumer_offsets take seconds).
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        # Small segments let the cleaner compact __consumer_offsets (never its active
        # segment): one commit per record otherwise grows it to 100 MB of history that the
        # group coordinator replays on every start (238,341 records, 4-8 s, in the chaos run).
        # A long load after a kill -9 races the leader-epoch bumps of the restart and can
        # leave the coordinator FAILED (NOT_COORDINATOR until the next restart).
        "offsets.topic.segment.bytes": str(1024 * 1024),
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "share.coordinator.state.topic.num.partitions": "1",
        "min.insync.replicas": "1",
        "default.replication.factor": "1",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _kafka_cluster_id() -> str:
    # Kafka's Uuid text form: URL-safe base64 of 16 random bytes, never starting with "-".
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _kafka_spec(cfg: StackConfig, libs: Path) -> Spec:
    conf = cfg.conf_dir / "kafka"
    props, log4j = conf / "server.properties", conf / "log4j2.xml"
    data = cfg.data_dir / "kafka"
    log, out = cfg.log_file("kafka"), cfg.log_file("kafka.stdout")
    java = java_executable()
    classpath = f"{libs}/*"
    jvm = [
        java,
        "-Xms256m",
        "-Xmx512m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}",
        f"-Dkafka.logs.dir={cfg.log_dir}",
        "-cp",
        classpath,
    ]

    def prepare() -> None:
        conf.mkdir(parents=True, exist_ok=True)
        props.write_text(_kafka_properties(cfg))
        log4j.write_text(_LOG4J2.format(log=log))
        if (data / "meta.properties").is_file():
            return
        data.mkdir(parents=True, exist_ok=True)
        formatted = subprocess.run(  # noqa: S603 - java from JAVA_HOME/PATH
            [
                *jvm[:1],
                "-Xmx256m",
                "-cp",
                classpath,
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                _kafka_cluster_id(),
                "-c",
                str(props),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )
        if formatted.returncode != 0:
            raise StackError(
                f"formatting the storage in {data} failed:\n{formatted.stdout}{formatted.stderr}"
            )

    bootstrap = f"{cfg.host}:{cfg.ports['kafka']}"

    def check() -> None:
        _require_port(cfg.host, cfg.ports["kafka"])
        asyncio.run(_kafka_metadata(bootstrap))
        asyncio.run(_kafka_group_join(bootstrap))

    return Spec(
        name="kafka",
        command=[*jvm, "kafka.Kafka", str(props)],
        ports=(cfg.ports["kafka"], cfg.ports["kafka_controller"]),
        check=check,
        logs=(log, out),
        cwd=cfg.state_dir,
        prepare=prepare,
        start_timeout=120.0,
        restart_when_stuck_after=KAFKA_COORDINATOR_STUCK_SECONDS,
    )


async def _kafka_metadata(bootstrap: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415 - heavy, only when checking

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
    except Exception as exc:
        raise NotReady(f"Kafka metadata request failed: {exc!r}") from exc
    finally:
        await admin.close()
    if not cluster.get("brokers"):
        raise NotReady("Kafka answered metadata without any broker")


#: The throwaway group and topic the Kafka check joins: services need a working coordinator.
KAFKA_PROBE_GROUP = "threadline-stack-probe"
KAFKA_PROBE_TOPIC = "threadline.stack-probe"
#: A coordinator that refuses joins this long after the broker answered metadata is restarted
#: (loading a compacted __consumer_offsets takes well under a second here).
KAFKA_COORDINATOR_STUCK_SECONDS = 45.0
KAFKA_GROUP_JOIN_SECONDS = 10.0


async def _kafka_group_join(bootstrap: str) -> None:
    """Join (and leave) a throwaway consumer group, as every service does at start.

    A metadata answer is not enough: after an unclean stop, Kafka 4.1's group coordinator
    can fail to load __consumer_offsets and answer NOT_COORDINATOR until the next restart.
    """
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415 - heavy, only when checking
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: PLC0415
    from aiokafka.errors import TopicAlreadyExistsError  # noqa: PLC0415

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=KAFKA_PROBE_GROUP,
        enable_auto_commit=False,
        request_timeout_ms=5000,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    try:
        await admin.start()
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(KAFKA_PROBE_TOPIC, 1, 1)])
        await consumer.start()
        consumer.subscribe([KAFKA_PROBE_TOPIC])
        async with asyncio.timeout(KAFKA_GROUP_JOIN_SECONDS):
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=200)
    except TimeoutError as exc:
        raise Stuck(
            f"Kafka answers metadata but no consumer group could join within "
            f"{KAFKA_GROUP_JOIN_SECONDS:.0f}s "
            "(group coordinator not loaded or failed: see GroupCoordinator lines in its log)"
        ) from exc
    except Exception as exc:
        raise NotReady(f"Kafka consumer group join failed: {exc!r}") from exc
    finally:
        await consumer.stop()
        await admin.close()


# --- FerretDB on PostgreSQL (MongoDB protocol) ------------------------------------------
#: PostgreSQL refuses to run as root; when the stack runs as root, this account owns its data.
POSTGRES_ACCOUNT = "postgres"


def _postgres_account() -> pwd.struct_passwd | None:
    """The account PostgreSQL runs as: `postgres` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(POSTGRES_ACCOUNT)
    except KeyError as exc:
        raise StackError(
            f"running as root, PostgreSQL needs the {POSTGRES_ACCOUNT!r} account "
            "(Debian's postgresql-15 package creates it)"
        ) from exc


def _initdb(data: Path, account: pwd.struct_passwd | None) -> None:
    """Initialise a PostgreSQL cluster in `data` (beside it first, renamed when complete)."""
    temp = data.with_name(f".{data.name}-init")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(mode=0o700, parents=True)
    if account is not None:
        os.chown(temp, account.pw_uid, account.pw_gid)
    result = subprocess.run(  # noqa: S603 - Debian's initdb
        [
            str(POSTGRES_BIN / "initdb"),
            "-D",
            str(temp),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ],
        cwd=temp,
        env={**os.environ, "HOME": account.pw_dir if account else os.environ.get("HOME", "/")},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        user=account.pw_uid if account else None,
        group=account.pw_gid if account else None,
        extra_groups=[] if account else None,
    )
    if result.returncode != 0:
        raise StackError(f"initdb in {temp} failed:\n{result.stdout}{result.stderr}")
    temp.rename(data)


def _mongodb_spec(cfg: StackConfig, binary: Path) -> Spec:
    """FerretDB with its PostgreSQL: one process group, so `stop mongodb` stops (and a kill
    kills) both. The wrapper starts PostgreSQL as its child (stack/ferretdb/main.go)."""
    url = f"mongodb://{cfg.host}:{cfg.ports['mongodb']}"
    data = cfg.data_dir / "postgres"

    def check() -> None:
        _require_port(cfg.host, cfg.ports["mongodb"])
        from pymongo import MongoClient  # noqa: PLC0415 - only when checking
        from pymongo.errors import PyMongoError  # noqa: PLC0415

        client: MongoClient[dict[str, object]] = MongoClient(
            url, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000
        )
        try:
            client.admin.command("ping")  # FerretDB asks PostgreSQL for its status
        except PyMongoError as exc:
            raise NotReady(f"MongoDB ping failed: {exc}") from exc
        finally:
            client.close()

    account = _postgres_account()

    def prepare() -> None:
        if not (data / "PG_VERSION").is_file():
            _initdb(data, account)

    return Spec(
        name="mongodb",
        command=[
            str(binary),
            f"-listen={cfg.host}:{cfg.ports['mongodb']}",
            "-handler=postgresql",
            f"-data={data}",
            f"-postgres-bin={POSTGRES_BIN}",
            f"-postgres-port={cfg.ports['postgres']}",
            f"-postgres-user={account.pw_name if account else ''}",
        ],
        ports=(cfg.ports["mongodb"], cfg.ports["postgres"]),
        check=check,
        logs=(cfg.log_file("mongodb"),),
        cwd=cfg.state_dir,
        prepare=prepare,
        start_timeout=120.0,
    )


# --- MinIO ------------------------------------------------------------------------------
def _minio_spec(cfg: StackConfig, binary: Path) -> Spec:
    host, port, console = cfg.host, cfg.ports["minio"], cfg.ports["minio_console"]
    data = cfg.data_dir / "minio"

    def check() -> None:
        _require_port(host, port)
        _http_ok(f"http://{host}:{port}/minio/health/ready")

    def prepare() -> None:
        data.mkdir(parents=True, exist_ok=True)

    return Spec(
        name="minio",
        command=[
            str(binary),
            "server",
            str(data),
            "--quiet",
            "--address",
            f"{host}:{port}",
            "--console-address",
            f"{host}:{console}",
        ],
        ports=(port, console),
        check=check,
        logs=(cfg.log_file("minio"),),
        cwd=cfg.state_dir,
        env={
            "MINIO_ROOT_USER": S3_ACCESS_KEY,
            "MINIO_ROOT_PASSWORD": S3_SECRET_KEY,
            "MINIO_UPDATE": "off",
            "MINIO_BROWSER": "off",
            # CORS for the portal only (MinIO's default reflects any origin, credentials too).
            "MINIO_API_CORS_ALLOW_ORIGIN": cfg.portal_origin,
        },
        prepare=prepare,
        start_timeout=60.0,
    )


# --- SMTP sink --------------------------------------------------------------------------
def _smtp_spec(cfg: StackConfig, _: Path | None = None) -> Spec:
    host, port = cfg.host, cfg.ports["smtp"]

    def check() -> None:
        _require_port(host, port)
        try:
            with smtplib.SMTP(host, port, timeout=3) as smtp:
                smtp.noop()
        except (smtplib.SMTPException, OSError) as exc:
            raise NotReady(f"SMTP NOOP failed: {exc}") from exc

    return Spec(
        name="smtp",
        command=[
            sys.executable,
            "-m",
            "threadline.devtools.smtp_sink",
            "--host",
            host,
            "--port",
            str(port),
            "--mail-dir",
            str(cfg.mail_dir),
        ],
        ports=(port,),
        check=check,
        logs=(cfg.log_file("smtp"),),
        cwd=cfg.state_dir,
        start_timeout=30.0,
    )


_SERVER_SPECS: dict[str, Callable[..., Spec]] = {
    "kafka": _kafka_spec,
    "mongodb": _mongodb_spec,
    "minio": _minio_spec,
    "smtp": _smtp_spec,
}

#: Seconds between SIGTERM and SIGKILL; Kafka's controlled shutdown takes a few seconds.
STOP_TIMEOUTS: dict[str, float] = {"kafka": 30.0, "mongodb": 20.0, "minio": 10.0, "smtp": 5.0}
SERVICE_STOP_TIMEOUT = 15.0


def server_spec(cfg: StackConfig, name: str, artifact: Path | None) -> Spec:
    """The spec of server `name`, run from its cached `artifact` (None for the SMTP sink)."""
    return _SERVER_SPECS[name](cfg, artifact)


# --- the five services ------------------------------------------------------------------
def _service_spec(cfg: StackConfig, name: str) -> Spec:
    port = cfg.ports[name]

    def check() -> None:
        _require_port(cfg.host, port)
        _http_ok(f"http://{cfg.host}:{port}/readyz")

    return Spec(
        name=name,
        command=[
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            f"threadline.{name}.main:create_app",
            "--host",
            cfg.host,
            "--port",
            str(port),
            "--timeout-graceful-shutdown",
            "15",
        ],
        ports=(port,),
        check=check,
        logs=(cfg.log_file(name),),
        cwd=cfg.repo_root or cfg.state_dir,
        start_timeout=90.0,
    )


def service_spec(cfg: StackConfig, name: str) -> Spec:
    """The spec of one of the five services (uvicorn on its `create_app` factory)."""
    return _service_spec(cfg, name)
