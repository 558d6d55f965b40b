"""The chaos run, shortened (issue 15): every kind of process of the platform is killed with
SIGKILL once under a small mixed workload, and every invariant of `benchmarks/chaos.py`
must hold afterwards.

It runs on a private stack it starts itself (own state directory, own free ports that are
none of the defaults nor the other stacks of this machine), never on the servers the rest
of the suite shares: killing those would break tests running beside it. The servers come
from the build cache `./threadline test` fills anyway.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from threadline.devtools.ports import free_ports
from threadline.devtools.stack import LocalStack
from threadline.devtools.stack.config import SERVERS, SERVICES, StackConfig

pytestmark = pytest.mark.chaos

ROOT = Path(__file__).resolve().parents[2]
_PORT_NAMES = (
    "kafka",
    "kafka_controller",
    "mongodb",
    "postgres",
    "minio",
    "minio_console",
    "smtp",
    *SERVICES,
)


def _load_harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chaos_harness", ROOT / "benchmarks/chaos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


harness = _load_harness()


@pytest.fixture
def private_stack() -> Iterator[LocalStack]:
    # Not pytest's tmp_path: that is private to the user, and PostgreSQL runs as `postgres`
    # when the tests run as root.
    state = Path(tempfile.mkdtemp(prefix="threadline-chaos-"))
    state.chmod(0o755)
    ports = dict(zip(_PORT_NAMES, free_ports(len(_PORT_NAMES)), strict=True))
    environ = {k: v for k, v in os.environ.items() if not k.endswith("_PORT")}
    environ |= {f"THREADLINE_{name.upper()}_PORT": str(port) for name, port in ports.items()}
    config = StackConfig.from_env(state_dir=state, environ=environ)
    saved = dict(os.environ)
    os.environ.update(harness.CHAOS_TIMINGS)  # the services start with the run's timers
    stack = LocalStack(config=config)
    try:
        stack.up(seed=False)
        yield stack
    finally:
        stack.down()
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(state, ignore_errors=True)


async def test_one_kill_of_each_kind_loses_nothing_doubles_nothing(
    private_stack: LocalStack, capsys: Any
) -> None:
    results = await harness.run(
        private_stack, harness.SUITE_FAULTS, harness.SUITE, restore_env=False, baseline=False
    )
    killed = {name for fault in harness.SUITE_FAULTS for name in fault}
    assert killed == {*SERVERS, *SERVICES}, "one kill of every kind of process"
    with capsys.disabled():  # the table is the test's report, also when it passes
        print()
        clean = harness.report(results)
    if not clean:  # the private stack's state goes at teardown: keep its logs to read
        kept = shutil.copytree(
            private_stack.config.log_dir,
            Path(tempfile.mkdtemp(prefix="threadline-chaos-logs-")) / "logs",
        )
        pytest.fail(f"invariants violated (table and violations above); logs kept in {kept}")
