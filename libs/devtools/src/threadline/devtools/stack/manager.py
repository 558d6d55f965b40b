"""`LocalStack`: start, check, stop and report the servers and services of one state dir.

Everything it starts is recorded in `<state dir>/run/<name>.json`; `stop`/`down` only ever
signal recorded processes that are still the same process (pid and kernel start time), so
they never touch a server someone else runs on the same port. Starting is idempotent: a
recorded process that is alive is left alone (and only health-checked again).
"""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import procs
from .config import SERVERS, SERVICES, StackConfig
from .errors import StackError
from .install import INSTALLERS, install
from .specs import (
    SERVICE_STOP_TIMEOUT,
    STOP_TIMEOUTS,
    NotReady,
    Spec,
    Stuck,
    server_spec,
    service_spec,
)

__all__ = ["LocalStack", "ProcessStatus"]

#: How long a start waits for the ports of this stack's own dead process to close.
PORTS_FREED_SECONDS = 15.0


@dataclass(frozen=True)
class ProcessStatus:
    """One line of `status`."""

    name: str
    state: str  # "running" | "stopped" | "dead" (recorded but gone)
    pid: int | None
    ports: dict[int, bool]
    log: Path


class LocalStack:
    """The local stack of one state directory.

    >>> stack = LocalStack()            # THREADLINE_STATE_DIR or <repo>/.threadline
    >>> stack.stop("kafka"); stack.start("kafka")
    >>> stack.endpoints()["THREADLINE_KAFKA_BOOTSTRAP_SERVERS"]
    '127.0.0.1:9092'

    Methods block (a server start takes seconds); from async code use `astart`/`astop`.
    Every failure is a `StackError` whose message ends with the tail of the relevant log.
    """

    def __init__(
        self,
        state_dir: Path | str | None = None,
        *,
        cache_dir: Path | str | None = None,
        config: StackConfig | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config or StackConfig.from_env(state_dir=state_dir, cache_dir=cache_dir)
        self._say = say or (lambda message: print(message, file=sys.stderr, flush=True))

    # --- read-only -------------------------------------------------------------------
    def endpoints(self) -> dict[str, str]:
        """`THREADLINE_*` variable → value, as given to every process of the stack."""
        return self.config.endpoints()

    def env(self) -> dict[str, str]:
        """The full environment the stack's processes get (os.environ + endpoints)."""
        return self.config.process_env()

    def is_running(self, name: str) -> bool:
        record = procs.read_record(self.config.run_dir, name)
        return record is not None and procs.is_alive(record)

    def status(self) -> list[ProcessStatus]:
        result = []
        for name in (*SERVERS, *SERVICES):
            record = procs.read_record(self.config.run_dir, name)
            alive = record is not None and procs.is_alive(record)
            state = "running" if alive else ("dead" if record else "stopped")
            result.append(
                ProcessStatus(
                    name=name,
                    state=state,
                    pid=record.pid if record else None,
                    ports={p: procs.port_open(self.config.host, p) for p in self._ports(name)},
                    log=self.config.log_file(name),
                )
            )
        return result

    def _ports(self, name: str) -> tuple[int, ...]:
        ports = self.config.ports
        extra = {"kafka": "kafka_controller", "mongodb": "postgres", "minio": "minio_console"}.get(
            name
        )
        return (ports[name], ports[extra]) if extra else (ports[name],)

    # --- servers -----------------------------------------------------------------------
    def install(self) -> None:
        """Build or fetch every server into the cache (no-op when cached)."""
        install(self.config, self._say)

    def servers(self, *, started: list[str] | None = None) -> list[str]:
        """Install, then start every server that is not running and wait until all are healthy.

        Returns the names it started; `started`, when given, is filled as each one is
        launched, so a caller can stop them even when a later one fails.
        """
        artifacts = install(self.config, self._say)
        paths = {
            "kafka": artifacts.kafka_libs,
            "mongodb": artifacts.ferretdb,
            "minio": artifacts.minio,
            "smtp": None,
        }
        specs = [server_spec(self.config, name, paths[name]) for name in SERVERS]
        return self._start_all(specs, started)

    def start(self, *names: str) -> list[str]:
        """Start the named servers or services (if not running) and wait until healthy."""
        specs = [self._spec(name) for name in names]
        return self._start_all(specs, None)

    def stop(self, *names: str) -> None:
        """Stop the named processes this stack started (SIGTERM, then SIGKILL), in parallel."""
        for name in names:
            self._spec_name_known(name)
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            list(pool.map(self._stop_one, names))

    def kill(self, *names: str) -> None:
        """SIGKILL the named processes this stack started, all at once (a crash: no graceful
        shutdown). Their records stay, so `status` shows them dead and `start` restarts them."""
        for name in names:
            self._spec_name_known(name)
        for name in names:
            record = procs.read_record(self.config.run_dir, name)
            if record is None:
                raise StackError(f"{name} was not started by this stack; nothing to kill")
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            list(pool.map(self._kill_one, names))

    async def astart(self, *names: str) -> list[str]:
        return await asyncio.to_thread(self.start, *names)

    async def astop(self, *names: str) -> None:
        await asyncio.to_thread(self.stop, *names)

    # --- the platform ------------------------------------------------------------------
    def up(self, *, seed: bool = True) -> list[str]:
        """Servers, then the five services, then the demo directory and pipeline. Returns what
        it started."""
        started = self.servers()
        missing = [n for n in SERVICES if importlib.util.find_spec(f"threadline.{n}.main") is None]
        if missing:
            raise StackError(
                "cannot start the services: "
                + ", ".join(f"threadline.{name}.main" for name in missing)
                + " not found (create_app not written yet?); the servers are running"
            )
        started += self._start_all([service_spec(self.config, n) for n in SERVICES], None)
        if seed:
            self._say("seeding the demo directory (threadline-seed) ...")
            self.run_tool("seed")
            self._say("setting up the demo pipeline (threadline-demo-pipeline) ...")
            try:
                self._say(self.run_tool("demo_pipeline").strip())
            except (StackError, subprocess.TimeoutExpired) as exc:  # the platform is up anyway
                self._say(f"demo pipeline not set up ({exc}); run threadline-demo-pipeline later")
        return started

    def down(self) -> None:
        """Stop the services, then the servers: exactly the recorded processes."""
        self.stop(*SERVICES)
        self.stop(*SERVERS)

    def run_tool(self, tool: str, *args: str, timeout: float = 120.0) -> str:
        """Run `threadline.devtools.<tool>:main` with the stack's environment; its stdout."""
        code = f"import sys; from threadline.devtools.{tool} import main; sys.exit(main())"
        result = subprocess.run(  # noqa: S603 - our interpreter, our module
            [sys.executable, "-c", code, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(
                f"threadline-{tool} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result.stdout

    # --- internals ---------------------------------------------------------------------
    def _spec_name_known(self, name: str) -> None:
        if name not in SERVERS and name not in SERVICES:
            known = ", ".join((*SERVERS, *SERVICES))
            raise StackError(f"unknown process {name!r}; expected one of: {known}")

    def _spec(self, name: str) -> Spec:
        self._spec_name_known(name)
        if name in SERVICES:
            return service_spec(self.config, name)
        installer = INSTALLERS.get(name)
        artifact = installer(self.config, self._say) if installer else None
        return server_spec(self.config, name, artifact)

    def _stop_one(self, name: str) -> None:
        record = procs.read_record(self.config.run_dir, name)
        if record is None:
            return
        timeout = STOP_TIMEOUTS.get(name, SERVICE_STOP_TIMEOUT)
        outcome = procs.terminate(record, timeout=timeout)
        if outcome != "not running":
            self._say(f"{name}: {outcome} (pid {record.pid})")
        procs.forget(self.config.run_dir, name)

    def _kill_one(self, name: str) -> None:
        record = procs.read_record(self.config.run_dir, name)
        if record is not None:
            self._say(f"{name}: {procs.kill(record)} (pid {record.pid})")

    def _launch(self, spec: Spec) -> bool:
        """Start `spec` unless its recorded process is alive. True when it started it."""
        record = procs.read_record(self.config.run_dir, spec.name)
        if record is not None and procs.is_alive(record):
            self._say(f"{spec.name}: already running (pid {record.pid})")
            return False
        busy = self._busy_ports(spec, wait=0.0 if record is None else PORTS_FREED_SECONDS)
        if busy:
            raise StackError(
                f"port {busy[0]} on {self.config.host} is already in use by a "
                "process this stack did not start; stop it or choose other ports "
                f"(THREADLINE_{spec.name.upper()}_PORT)"
            )
        if spec.prepare is not None:
            spec.prepare()
        record = procs.spawn(
            spec.name,
            spec.command,
            env={**self.env(), **spec.env},
            cwd=spec.cwd,
            log=spec.logs[-1],
            run_dir=self.config.run_dir,
        )
        self._say(f"{spec.name}: started (pid {record.pid}, log {spec.logs[0]})")
        return True

    def _busy_ports(self, spec: Spec, *, wait: float) -> list[int]:
        """Ports of `spec` something listens on, waiting up to `wait` seconds for them to
        close: a process just killed can hold its listening sockets a moment longer."""
        deadline = time.monotonic() + wait
        while True:
            busy = [port for port in spec.ports if procs.port_open(self.config.host, port)]
            if not busy or time.monotonic() >= deadline:
                return busy
            time.sleep(0.2)

    def _start_all(self, specs: Sequence[Spec], started: list[str] | None) -> list[str]:
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        launched: list[str] = [] if started is None else started
        began = time.monotonic()
        failures: list[str] = []
        waiting: list[Spec] = []
        for spec in specs:
            try:
                if self._launch(spec):
                    launched.append(spec.name)
            except (StackError, OSError, subprocess.SubprocessError) as exc:
                failures.append(f"{spec.name}: {exc}")
            else:
                waiting.append(spec)
        failures += self._wait_all(waiting)
        if failures:
            raise StackError("\n\n".join(failures))
        names = ", ".join(spec.name for spec in specs)
        self._say(f"healthy: {names} ({time.monotonic() - began:.1f}s)")
        return list(launched)

    def _wait_all(self, specs: Iterable[Spec]) -> list[str]:
        specs = list(specs)
        with ThreadPoolExecutor(max_workers=max(1, len(specs)), thread_name_prefix="wait") as pool:
            outcomes = list(pool.map(self._wait_healthy, specs))
        return [outcome for outcome in outcomes if outcome]

    def _wait_healthy(self, spec: Spec) -> str | None:
        """None when healthy, else a message with the log tail.

        A process that stays `Stuck` for `spec.restart_when_stuck_after` seconds is stopped
        and started again, once (and its start timeout begins again)."""
        deadline = time.monotonic() + spec.start_timeout
        reason = "not checked yet"
        stuck_since: float | None = None
        restarted = False
        while True:
            record = procs.read_record(self.config.run_dir, spec.name)
            if record is None or not procs.is_alive(record):
                return self._failure(spec, "exited during start-up")
            try:
                spec.check()
            except Stuck as exc:
                reason = str(exc)
                stuck_since = stuck_since or time.monotonic()
            except NotReady as exc:
                reason, stuck_since = str(exc), None
            except Exception as exc:  # a check must never kill the wait loop
                reason, stuck_since = repr(exc), None
            else:
                return None
            limit = spec.restart_when_stuck_after
            if (
                not restarted
                and limit is not None
                and stuck_since is not None
                and time.monotonic() - stuck_since >= limit
            ):
                self._say(f"{spec.name}: stuck for {limit:.0f}s ({reason}); restarting it once")
                self._stop_one(spec.name)
                self._launch(spec)
                restarted, stuck_since = True, None
                deadline = time.monotonic() + spec.start_timeout
            elif time.monotonic() >= deadline:
                return self._failure(
                    spec, f"not healthy after {spec.start_timeout:.0f}s (last: {reason})"
                )
            time.sleep(0.5)

    def _failure(self, spec: Spec, what: str) -> str:
        parts = [f"{spec.name}: {what}"]
        for log in spec.logs:
            text = procs.tail(log)
            if text:
                parts.append(f"--- last lines of {log} ---\n{text}")
        return "\n".join(parts)
