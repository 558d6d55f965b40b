"""Where the local stack lives and what every process it starts is told.

One frozen `StackConfig` answers every "where/which port/which version" question, read once
from the environment, so the CLI, the `./threadline` script and tests that restart a server
all agree on the same state directory and endpoints.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "DEFAULT_MINIO_VERSION",
    "DEFAULT_PORTS",
    "SERVERS",
    "SERVICES",
    "SERVICE_ENV_VARS",
    "StackConfig",
    "find_repo_root",
]

DEFAULT_KAFKA_VERSION = "4.1.1"
# MinIO has no semver tags; this pseudo-version is a commit the Go proxy serves.
DEFAULT_MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"

#: The web portal's origin, the only one MinIO answers cross-origin requests for (presigned
#: links are fetched by the portal); `THREADLINE_PORTAL_ORIGIN` overrides it.
DEFAULT_PORTAL_ORIGIN = "http://localhost:3000"

# Fixed development credentials: the stack only listens on loopback.
JWT_SECRET = "local-dev-secret-not-for-production-use-0000"  # noqa: S105
S3_ACCESS_KEY = "threadline"
S3_SECRET_KEY = "threadline-local-secret"  # noqa: S105
#: The MongoDB user bulk jobs log in as (stack/ferretdb/priority.go: batchRole).
BATCH_ROLE = "threadline_batch"

#: The variables every process of the stack (servers, services, tests) receives. The services'
#: settings read exactly these names; docker-compose.yml must set the same ones (a test checks).
SERVICE_ENV_VARS: tuple[str, ...] = (
    "THREADLINE_ENV",
    "THREADLINE_KAFKA_BOOTSTRAP_SERVERS",
    "THREADLINE_MONGODB_URL",
    "THREADLINE_MONGODB_BATCH_URL",
    "THREADLINE_S3_ENDPOINT",
    "THREADLINE_S3_ACCESS_KEY",
    "THREADLINE_S3_SECRET_KEY",
    "THREADLINE_SMTP_HOST",
    "THREADLINE_SMTP_PORT",
    "THREADLINE_MAIL_DIR",
    "THREADLINE_JWT_SECRET",
    "THREADLINE_JWT_ISSUER",
    "THREADLINE_JWT_AUDIENCE",
)

#: Servers in start order; `stop`/`start` accept these names.
SERVERS: tuple[str, ...] = ("kafka", "mongodb", "minio", "smtp")
#: The five services and their default HTTP ports.
SERVICES: Mapping[str, int] = {
    "messaging": 8001,
    "tasks": 8002,
    "reminders": 8003,
    "pipeline": 8004,
    "documents": 8005,
}

DEFAULT_PORTS: Mapping[str, int] = {
    "kafka": 9092,
    "kafka_controller": 9093,
    "mongodb": 27017,
    "postgres": 54320,  # FerretDB's PostgreSQL, part of the `mongodb` server
    "minio": 9000,
    "minio_console": 9001,
    "smtp": 1025,
    **SERVICES,
}


def find_repo_root(start: Path | None = None) -> Path | None:
    """Return the monorepo root (the directory holding `stack/kafka/pom.xml`), or None.

    Looks at `THREADLINE_REPO_ROOT`, then upwards from `start` (default: the working
    directory), then upwards from this file (the editable install lives inside the repo).
    """
    explicit = os.environ.get("THREADLINE_REPO_ROOT")
    if explicit:
        return Path(explicit).resolve()
    for origin in (start or Path.cwd(), Path(__file__)):
        for candidate in (origin.resolve(), *origin.resolve().parents):
            if (candidate / "stack" / "kafka" / "pom.xml").is_file() and (
                candidate / "pyproject.toml"
            ).is_file():
                return candidate
    return None


def _port(environ: Mapping[str, str], name: str) -> int:
    value = environ.get(f"THREADLINE_{name.upper()}_PORT")
    return int(value) if value else DEFAULT_PORTS[name]


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    """Paths, ports and versions of one local stack.

    Ports come from `THREADLINE_<NAME>_PORT` (e.g. `THREADLINE_KAFKA_PORT`,
    `THREADLINE_MESSAGING_PORT`), versions from `THREADLINE_KAFKA_VERSION` and
    `THREADLINE_MINIO_VERSION`, the portal origin MinIO allows from
    `THREADLINE_PORTAL_ORIGIN`.
    """

    repo_root: Path | None
    state_dir: Path
    cache_dir: Path
    ports: Mapping[str, int]
    kafka_version: str = DEFAULT_KAFKA_VERSION
    minio_version: str = DEFAULT_MINIO_VERSION
    portal_origin: str = DEFAULT_PORTAL_ORIGIN
    host: str = "127.0.0.1"

    @classmethod
    def from_env(
        cls,
        *,
        state_dir: Path | str | None = None,
        cache_dir: Path | str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> StackConfig:
        env = os.environ if environ is None else environ
        repo_root = find_repo_root()
        if state_dir is None:
            state_dir = env.get("THREADLINE_STATE_DIR") or (
                (repo_root or Path.cwd()) / ".threadline"
            )
        if cache_dir is None:
            cache_dir = env.get("THREADLINE_CACHE_DIR") or Path.home() / ".cache" / "threadline"
        return cls(
            repo_root=repo_root,
            state_dir=Path(state_dir).expanduser().resolve(),
            cache_dir=Path(cache_dir).expanduser().resolve(),
            ports={name: _port(env, name) for name in DEFAULT_PORTS},
            kafka_version=env.get("THREADLINE_KAFKA_VERSION") or DEFAULT_KAFKA_VERSION,
            minio_version=env.get("THREADLINE_MINIO_VERSION") or DEFAULT_MINIO_VERSION,
            portal_origin=env.get("THREADLINE_PORTAL_ORIGIN") or DEFAULT_PORTAL_ORIGIN,
        )

    # --- layout of the state directory -------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def mail_dir(self) -> Path:
        return self.state_dir / "mail"

    @property
    def conf_dir(self) -> Path:
        return self.state_dir / "conf"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    # --- what processes are told -------------------------------------------------------
    def endpoints(self) -> dict[str, str]:
        """The `SERVICE_ENV_VARS` with this stack's values."""
        return {
            "THREADLINE_ENV": "local",
            "THREADLINE_KAFKA_BOOTSTRAP_SERVERS": f"{self.host}:{self.ports['kafka']}",
            "THREADLINE_MONGODB_URL": f"mongodb://{self.host}:{self.ports['mongodb']}",
            # FerretDB's PostgreSQL runs this role's backends at a lower CPU priority
            # (stack/ferretdb/priority.go); the password is not checked (trust).
            "THREADLINE_MONGODB_BATCH_URL": (
                f"mongodb://{BATCH_ROLE}:{BATCH_ROLE}@{self.host}:{self.ports['mongodb']}"
                "/?authMechanism=PLAIN"
            ),
            "THREADLINE_S3_ENDPOINT": f"http://{self.host}:{self.ports['minio']}",
            "THREADLINE_S3_ACCESS_KEY": S3_ACCESS_KEY,
            "THREADLINE_S3_SECRET_KEY": S3_SECRET_KEY,
            "THREADLINE_SMTP_HOST": self.host,
            "THREADLINE_SMTP_PORT": str(self.ports["smtp"]),
            "THREADLINE_MAIL_DIR": str(self.mail_dir),
            "THREADLINE_JWT_SECRET": JWT_SECRET,
            "THREADLINE_JWT_ISSUER": "threadline-local",
            "THREADLINE_JWT_AUDIENCE": "threadline",
        }

    def process_env(self) -> dict[str, str]:
        """The environment of every process the stack starts."""
        return {**os.environ, **self.endpoints(), "THREADLINE_STATE_DIR": str(self.state_dir)}
