"""A server whose check says `Stuck` (Kafka's group coordinator failed after a kill -9)
is restarted once by the stack; one that is merely `NotReady` is never restarted."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from threadline.devtools.stack import LocalStack, procs
from threadline.devtools.stack.config import StackConfig
from threadline.devtools.stack.specs import NotReady, Spec, Stuck

# Appends a line per launch, then serves until terminated.
_SERVER = "import sys, time; open(sys.argv[1], 'a').write('launch\\n'); time.sleep(120)"


def _stack(tmp_path: Path) -> LocalStack:
    config = StackConfig.from_env(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")
    return LocalStack(config=config, say=lambda _: None)


def _launches(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


def _spec(tmp_path: Path, launches: Path, check: Callable[[], None], *, timeout: float) -> Spec:
    return Spec(
        name="smtp",
        command=[sys.executable, "-c", _SERVER, str(launches)],
        ports=(),
        check=check,
        logs=(tmp_path / "smtp.log",),
        cwd=tmp_path,
        start_timeout=timeout,
        restart_when_stuck_after=0.5,
    )


def test_a_stuck_server_is_restarted_once_and_then_healthy(tmp_path: Path) -> None:
    stack, launches = _stack(tmp_path), tmp_path / "launches"

    def check() -> None:
        if _launches(launches) < 2:
            raise Stuck("coordinator failed")

    spec = _spec(tmp_path, launches, check, timeout=30)
    try:
        assert stack._launch(spec)
        assert stack._wait_healthy(spec) is None
        assert _launches(launches) == 2
    finally:
        stack.kill("smtp")


def test_a_stuck_server_is_restarted_only_once(tmp_path: Path) -> None:
    stack, launches = _stack(tmp_path), tmp_path / "launches"

    def check() -> None:
        raise Stuck("coordinator failed")

    spec = _spec(tmp_path, launches, check, timeout=2)
    try:
        assert stack._launch(spec)
        failure = stack._wait_healthy(spec)
        assert failure is not None and "coordinator failed" in failure
        assert _launches(launches) == 2
    finally:
        stack.kill("smtp")


def test_a_server_not_ready_yet_is_not_restarted(tmp_path: Path) -> None:
    stack, launches = _stack(tmp_path), tmp_path / "launches"

    def check() -> None:
        raise NotReady("still loading")

    spec = _spec(tmp_path, launches, check, timeout=2)
    try:
        assert stack._launch(spec)
        failure = stack._wait_healthy(spec)
        assert failure is not None and "still loading" in failure
        assert _launches(launches) == 1
        record = procs.read_record(stack.config.run_dir, "smtp")
        assert record is not None and procs.is_alive(record)
    finally:
        stack.kill("smtp")
