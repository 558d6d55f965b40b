"""`./threadline kill NAME`: SIGKILL a recorded process and its group (a crash, issue 15);
the record stays, so `status` says dead and `start` brings the process back."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from threadline.devtools.stack import LocalStack, procs
from threadline.devtools.stack.cli import main
from threadline.devtools.stack.config import StackConfig
from threadline.devtools.stack.errors import StackError

# Ignores SIGTERM (so only SIGKILL ends it) and starts a child that leads a session of its
# own, like FerretDB's wrapper and its PostgreSQL (which a group signal misses).
_CRASH_ONLY = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
)
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(120)
"""


def _stack(tmp_path: Path) -> LocalStack:
    config = StackConfig.from_env(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")
    return LocalStack(config=config, say=lambda _: None)


def _spawn_crash_only(stack: LocalStack, tmp_path: Path) -> tuple[procs.ProcessRecord, int]:
    child_file = tmp_path / "child.pid"
    record = procs.spawn(
        "smtp",
        [sys.executable, "-c", _CRASH_ONLY, str(child_file)],
        env=dict(os.environ),
        cwd=tmp_path,
        log=tmp_path / "smtp.log",
        run_dir=stack.config.run_dir,
    )
    deadline = time.monotonic() + 20
    while not (child_file.is_file() and child_file.read_text()):
        assert time.monotonic() < deadline, "the test process did not start its child"
        time.sleep(0.05)
    return record, int(child_file.read_text())


def test_kill_ends_the_process_and_its_group_at_once_and_keeps_the_record(
    tmp_path: Path,
) -> None:
    stack = _stack(tmp_path)
    record, child = _spawn_crash_only(stack, tmp_path)
    began = time.monotonic()
    stack.kill("smtp")
    assert time.monotonic() - began < 5, "SIGKILL does not wait for a graceful stop"
    assert not procs.is_alive(record)
    assert not Path(f"/proc/{child}").exists(), (
        "its child is gone too when kill returns, though it leads its own session"
    )
    smtp = next(row for row in stack.status() if row.name == "smtp")
    assert smtp.state == "dead", "the record stays, so `start` knows what to bring back"


def test_kill_refuses_what_the_stack_did_not_start(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    with pytest.raises(StackError, match="not started by this stack"):
        stack.kill("kafka")
    with pytest.raises(StackError, match="unknown process"):
        stack.kill("postgres")


def test_kill_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADLINE_STATE_DIR", str(tmp_path / "state"))
    stack = _stack(tmp_path)
    record, _ = _spawn_crash_only(stack, tmp_path)
    assert main(["kill", "smtp"]) == 0
    assert not procs.is_alive(record)
    assert main(["kill", "minio"]) == 1  # never started here: refused, nothing signalled
