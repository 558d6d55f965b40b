"""Build or fetch the servers once and cache them by version.

Layout under the cache directory (`${THREADLINE_CACHE_DIR:-~/.cache/threadline}`)::

    kafka/<version>-<pom hash>/libs/*.jar      Maven Central, `mvn dependency:copy-dependencies`
    ferretdb/<version>-<source hash>/ferretdb  `go build` of stack/ferretdb (FerretDB embedded)
    minio/<version>/minio                      `go install github.com/minio/minio@<version>`

PostgreSQL 15, which FerretDB stores into, is Debian's `postgresql-15` package: installed with
apt-get when `/usr/lib/postgresql/15/bin` is missing and we run as root (otherwise the error
says what to install).

Each build runs in a temporary sibling directory that is renamed into place only when it
succeeded, under a file lock: an interrupted or concurrent build never leaves a half-filled
entry that a later run would trust. A new version (or a changed recipe) is a new key, so it
rebuilds; older entries stay until removed by hand.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .config import StackConfig
from .errors import StackError
from .procs import tail

__all__ = [
    "INSTALLERS",
    "Artifacts",
    "install",
    "install_ferretdb",
    "install_kafka",
    "install_minio",
    "install_postgres",
]

#: Debian's PostgreSQL 15 (package `postgresql-15`).
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
POSTGRES_PACKAGE = "postgresql-15"


@dataclass(frozen=True)
class Artifacts:
    """Where the cached servers are."""

    kafka_libs: Path
    ferretdb: Path
    minio: Path
    postgres_bin: Path


def _tool(name: str, hint: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise StackError(f"`{name}` is not on PATH; {hint}")
    return found


def java_executable() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return _tool("java", "install Java 17+ (e.g. apt-get install openjdk-17-jre-headless)")


def _digest(*files: Path) -> str:
    sha = hashlib.sha256()
    for file in files:
        sha.update(file.name.encode())
        sha.update(file.read_bytes())
    return sha.hexdigest()[:12]


@contextlib.contextmanager
def _locked(cache_dir: Path, component: str) -> Iterator[None]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / f".{component}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run_build(command: Sequence[str], *, cwd: Path, env: dict[str, str], log: Path) -> None:
    with log.open("ab") as handle:
        handle.write(f"$ {' '.join(command)}\n".encode())
        handle.flush()
        result = subprocess.run(  # noqa: S603 - build tools resolved with shutil.which
            list(command), cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode != 0:
        raise StackError(
            f"build step failed ({result.returncode}): {' '.join(command)}\n"
            f"--- last lines of {log} ---\n{tail(log)}"
        )


def _cached(
    cfg: StackConfig,
    *,
    component: str,
    key: str,
    artifact: str,
    build: Callable[[Path, Path], None],
    say: Callable[[str], None],
) -> Path:
    """Return `<cache>/<component>/<key>/<artifact>`, building it first when absent."""
    final = cfg.cache_dir / component / key
    if (final / artifact).exists():
        return final / artifact
    with _locked(cfg.cache_dir, component):
        if (final / artifact).exists():  # built by a concurrent run while we waited
            return final / artifact
        final.parent.mkdir(parents=True, exist_ok=True)
        for stale in final.parent.glob(f".{key}.*"):  # left by a killed build
            shutil.rmtree(stale, ignore_errors=True)
        log_dir = cfg.cache_dir / "build-logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log = log_dir / f"{component}-{key}-{time.strftime('%Y%m%dT%H%M%S')}.log"
        temp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
        started = time.monotonic()
        say(f"{component} {key}: building (log: {log}) ...")
        try:
            build(temp, log)
            if not (temp / artifact).exists():
                raise StackError(f"{component} build produced no {artifact} (log: {log})")
            temp.chmod(0o755)  # mkdtemp makes it private
            temp.rename(final)
        finally:
            shutil.rmtree(temp, ignore_errors=True)
        say(f"{component} {key}: built in {time.monotonic() - started:.0f}s")
    return final / artifact


def _require_recipe(cfg: StackConfig, *parts: str) -> Path:
    if cfg.repo_root is None:
        raise StackError(
            "cannot find the repository (stack/kafka/pom.xml); run from the repo or set "
            "THREADLINE_REPO_ROOT"
        )
    path = cfg.repo_root.joinpath("stack", *parts)
    if not path.exists():
        raise StackError(f"missing build recipe {path}")
    return path


def install_kafka(cfg: StackConfig, say: Callable[[str], None]) -> Path:
    """Kafka broker jars from Maven Central; `-Dkafka.version` overrides the pom's version."""
    pom = _require_recipe(cfg, "kafka", "pom.xml")
    key = f"{cfg.kafka_version}-{_digest(pom)}"

    def build(temp: Path, log: Path) -> None:
        mvn = _tool("mvn", "install Maven 3 (e.g. apt-get install maven)")
        shutil.copy2(pom, temp / "pom.xml")
        _run_build(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(temp / "pom.xml"),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={temp / 'libs'}",
                f"-Dkafka.version={cfg.kafka_version}",
            ],
            cwd=temp,
            env=dict(os.environ),
            log=log,
        )
        if not (temp / "libs" / f"kafka_2.13-{cfg.kafka_version}.jar").is_file():
            raise StackError(f"kafka_2.13-{cfg.kafka_version}.jar was not resolved (log: {log})")
        (temp / "pom.xml").unlink()

    return _cached(cfg, component="kafka", key=key, artifact="libs", build=build, say=say)


def install_ferretdb(cfg: StackConfig, say: Callable[[str], None]) -> Path:
    """Our FerretDB 1.24 wrapper, version taken from its go.mod."""
    source = _require_recipe(cfg, "ferretdb")
    programs = sorted(p for p in source.glob("*.go") if not p.name.endswith("_test.go"))
    files = [source / "go.mod", source / "go.sum", *programs]
    match = re.search(r"github\.com/FerretDB/FerretDB (v\S+)", files[0].read_text())
    version = match.group(1) if match else "unknown"
    key = f"{version}-{_digest(*files)}"

    def build(temp: Path, log: Path) -> None:
        go = _tool("go", "install Go >= 1.24")
        src = temp / "src"
        src.mkdir()
        for file in files:
            shutil.copy2(file, src / file.name)
        env = {**os.environ, "CGO_ENABLED": "0"}
        _run_build(
            [go, "build", "-o", str(temp / "ferretdb"), "."],
            cwd=src,
            env=env,
            log=log,
        )
        shutil.rmtree(src)

    return _cached(cfg, component="ferretdb", key=key, artifact="ferretdb", build=build, say=say)


def install_postgres(cfg: StackConfig, say: Callable[[str], None]) -> Path:
    """PostgreSQL 15's binaries, installing Debian's package first when they are missing."""
    if (POSTGRES_BIN / "postgres").is_file():
        return POSTGRES_BIN
    with _locked(cfg.cache_dir, "postgres"):
        if (POSTGRES_BIN / "postgres").is_file():
            return POSTGRES_BIN
        apt = shutil.which("apt-get")
        if apt is None or os.geteuid() != 0:
            raise StackError(
                f"PostgreSQL 15 is missing ({POSTGRES_BIN}); install it as root: "
                f"apt-get install {POSTGRES_PACKAGE}"
            )
        # The package would create and start a cluster of its own on port 5432: not wanted.
        conf = Path("/etc/postgresql-common/createcluster.conf")
        if not conf.exists():
            conf.parent.mkdir(parents=True, exist_ok=True)
            conf.write_text("create_main_cluster = false\n")
        log_dir = cfg.cache_dir / "build-logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log = log_dir / f"postgres-{time.strftime('%Y%m%dT%H%M%S')}.log"
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        started = time.monotonic()
        say(f"postgres: installing {POSTGRES_PACKAGE} with apt-get (log: {log}) ...")
        install_cmd = [apt, "install", "-y", "--no-install-recommends", POSTGRES_PACKAGE]
        try:
            _run_build(install_cmd, cwd=cfg.cache_dir, env=env, log=log)
        except StackError:  # stale package lists: refresh once and retry
            _run_build([apt, "update"], cwd=cfg.cache_dir, env=env, log=log)
            _run_build(install_cmd, cwd=cfg.cache_dir, env=env, log=log)
        say(f"postgres: installed in {time.monotonic() - started:.0f}s")
    return POSTGRES_BIN


def install_mongodb(cfg: StackConfig, say: Callable[[str], None]) -> Path:
    """What the `mongodb` server runs: PostgreSQL present, then our FerretDB wrapper."""
    install_postgres(cfg, say)
    return install_ferretdb(cfg, say)


def install_minio(cfg: StackConfig, say: Callable[[str], None]) -> Path:
    """MinIO server built from its Go module at a pinned pseudo-version."""
    version = cfg.minio_version

    def build(temp: Path, log: Path) -> None:
        go = _tool("go", "install Go >= 1.24")
        env = {**os.environ, "CGO_ENABLED": "0", "GOBIN": str(temp)}
        _run_build([go, "install", f"github.com/minio/minio@{version}"], cwd=temp, env=env, log=log)

    return _cached(cfg, component="minio", key=version, artifact="minio", build=build, say=say)


#: Server name → installer returning the cached artifact it runs from.
INSTALLERS: dict[str, Callable[[StackConfig, Callable[[str], None]], Path]] = {
    "kafka": install_kafka,
    "mongodb": install_mongodb,
    "minio": install_minio,
}


def install(cfg: StackConfig, say: Callable[[str], None] = print) -> Artifacts:
    """Make sure every server is in the cache (building the missing ones in parallel)."""
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="install") as pool:
        kafka = pool.submit(install_kafka, cfg, say)
        ferretdb = pool.submit(install_ferretdb, cfg, say)
        minio = pool.submit(install_minio, cfg, say)
        postgres = pool.submit(install_postgres, cfg, say)
        futures = (kafka, ferretdb, minio, postgres)
        errors = [f.exception() for f in futures if f.exception()]
    if errors:
        raise StackError("\n\n".join(str(error) for error in errors))
    return Artifacts(
        kafka_libs=kafka.result(),
        ferretdb=ferretdb.result(),
        minio=minio.result(),
        postgres_bin=postgres.result(),
    )
