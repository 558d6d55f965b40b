"""`python -m threadline.devtools.stack <command>`: the local stack from the command line.

Commands: install, servers, up, down, start NAME.., stop NAME.., restart NAME.., kill NAME..,
env, status.
Progress goes to stderr, so `eval "$(python -m threadline.devtools.stack env)"` stays clean.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from .config import SERVERS, SERVICES
from .errors import StackError
from .manager import LocalStack

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="threadline-stack",
        description="Run Threadline's servers (Kafka, FerretDB, MinIO, SMTP sink) and services "
        "as local processes. State: $THREADLINE_STATE_DIR (default <repo>/.threadline); "
        "cache: $THREADLINE_CACHE_DIR (default ~/.cache/threadline).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help="build/fetch the servers into the cache")
    servers = commands.add_parser("servers", help="install and start the servers, wait healthy")
    servers.add_argument(
        "--started-file", type=Path, help="write the names of the servers this run started"
    )
    up = commands.add_parser("up", help="servers + the five services + demo directory")
    up.add_argument("--no-seed", action="store_true", help="do not run threadline-seed")
    commands.add_parser("down", help="stop the services, then the servers")
    names = [*SERVERS, *SERVICES]
    verbs = (
        ("start", "start"),
        ("stop", "stop"),
        ("restart", "stop, then start"),
        ("kill", "SIGKILL (a crash; `start` brings them back)"),
    )
    for verb, text in verbs:
        sub = commands.add_parser(verb, help=f"{text} single servers or services")
        sub.add_argument("names", nargs="+", choices=names, metavar="NAME", help=" | ".join(names))
    commands.add_parser("env", help="print `export VAR=value` lines for the endpoints")
    commands.add_parser("status", help="what runs, pids, ports, logs")
    return parser


def _print_env(stack: LocalStack) -> None:
    values = {**stack.endpoints(), "THREADLINE_STATE_DIR": str(stack.config.state_dir)}
    for name, value in values.items():
        print(f"export {name}={shlex.quote(value)}")


def _print_status(stack: LocalStack) -> None:
    print(f"state dir: {stack.config.state_dir}")
    for row in stack.status():
        ports = " ".join(f"{port}{'*' if up else ''}" for port, up in row.ports.items())
        pid = str(row.pid) if row.pid else "-"
        print(f"  {row.name:<10} {row.state:<8} pid {pid:<8} ports {ports:<12} {row.log}")
    print("  (* = port accepts connections)")


def _print_welcome(stack: LocalStack) -> None:
    cfg, env = stack.config, stack.endpoints()
    try:
        token = stack.run_tool("token", "--kind", "staff", "--role", "owner").strip()
        token = token.splitlines()[-1] if token else "<threadline-token printed nothing>"
    except StackError as exc:  # e.g. the token command is not written yet
        reason = [line for line in str(exc).splitlines() if line.strip()][-1]
        token = f"<threadline-token failed: {reason.strip()}>"
    print("\nThreadline is up.\n")
    for name in SERVICES:
        print(f"  {name:<10} http://{cfg.host}:{cfg.ports[name]}   log {cfg.log_file(name)}")
    print(
        f"\n  kafka      {env['THREADLINE_KAFKA_BOOTSTRAP_SERVERS']}\n"
        f"  mongodb    {env['THREADLINE_MONGODB_URL']}  (FerretDB)\n"
        f"  minio      {env['THREADLINE_S3_ENDPOINT']}  "
        f"({env['THREADLINE_S3_ACCESS_KEY']} / {env['THREADLINE_S3_SECRET_KEY']})\n"
        f"  smtp       {env['THREADLINE_SMTP_HOST']}:{env['THREADLINE_SMTP_PORT']}  "
        f"(mail saved in {env['THREADLINE_MAIL_DIR']})\n"
    )
    print("Try it (token: staff owner, from threadline-token):\n")
    print(f"  export TOKEN={shlex.quote(token)}")
    for name in SERVICES:
        url = f"http://{cfg.host}:{cfg.ports[name]}/readyz"
        print(f'  curl -H "Authorization: Bearer $TOKEN" {url}')
    print("\nStop everything with: ./threadline down")


def _servers(args: argparse.Namespace, stack: LocalStack) -> None:
    started: list[str] = []
    try:
        stack.servers(started=started)
    finally:
        if args.started_file is not None:
            args.started_file.write_text("".join(f"{name}\n" for name in started))


def _up(args: argparse.Namespace, stack: LocalStack) -> None:
    stack.up(seed=not args.no_seed)
    _print_welcome(stack)


def _restart(args: argparse.Namespace, stack: LocalStack) -> None:
    stack.stop(*args.names)
    stack.start(*args.names)


_COMMANDS: dict[str, Callable[[argparse.Namespace, LocalStack], object]] = {
    "install": lambda _, stack: stack.install(),
    "servers": _servers,
    "up": _up,
    "down": lambda _, stack: stack.down(),
    "start": lambda args, stack: stack.start(*args.names),
    "stop": lambda args, stack: stack.stop(*args.names),
    "restart": _restart,
    "kill": lambda args, stack: stack.kill(*args.names),
    "env": lambda _, stack: _print_env(stack),
    "status": lambda _, stack: _print_status(stack),
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # aiokafka logs every refused connection while Kafka boots; the waits report failures.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        _COMMANDS[args.command](args, LocalStack())
    except StackError as exc:
        print(f"threadline stack: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("threadline stack: interrupted", file=sys.stderr)
        return 130
    return 0
