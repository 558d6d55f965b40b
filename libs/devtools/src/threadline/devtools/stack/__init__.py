"""The local stack: Threadline's servers and services as plain processes, no Docker needed.

Kafka (KRaft, from its Maven Central jars), FerretDB 1.24 on PostgreSQL 15 (MongoDB protocol),
MinIO (built from its Go module) and an SMTP sink run on 127.0.0.1, built once into
`${THREADLINE_CACHE_DIR:-~/.cache/threadline}`, with pids, logs, data and mail in
`${THREADLINE_STATE_DIR:-<repo>/.threadline}`. `./threadline` and `python -m
threadline.devtools.stack` drive it; tests use the API::

    from threadline.devtools.stack import LocalStack
    stack = LocalStack()
    stack.stop("kafka")
    stack.start("kafka")

Modules: `config` (paths, ports, env), `install` (cached builds), `procs` (pid files,
signals), `specs` (commands and health checks), `manager` (`LocalStack`), `cli`.
"""

from .config import SERVERS, SERVICE_ENV_VARS, SERVICES, StackConfig
from .errors import StackError
from .manager import LocalStack, ProcessStatus

__all__ = [
    "SERVERS",
    "SERVICES",
    "SERVICE_ENV_VARS",
    "LocalStack",
    "ProcessStatus",
    "StackConfig",
    "StackError",
]
