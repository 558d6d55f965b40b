"""Documents benchmark: prints figures measured in one run on the local stack.

    eval "$(./threadline env)" && .venv/bin/python benchmarks/documents.py

What it measures (issue "Documents service", Speed):
1. upload throughput of one file through POST /v1/accounts/{account}/documents on a real
   uvicorn process (multipart, streamed to MinIO), and of a direct MinIO ``put_object`` of
   the same bytes; their ratio;
2. download throughput through GET /v1/documents/{id}/content, and of a direct MinIO
   ``get_object``; their ratio;
3. peak resident memory of the service process while a 1 GiB file streams through it (up
   and down), next to its resident memory before.
Files are generated on the fly from a 1 MiB random block and never held whole in memory.
Every transfer has a time limit; all traffic stays on 127.0.0.1. Both paths use urllib3.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import urllib3
from minio import Minio

from threadline.devtools.seed import demo_directory, publish
from threadline.devtools.token import mint_token

sys.path.insert(0, os.path.dirname(__file__))
from _process import ServiceProcess

ACCOUNT = "acc_lee_family"
MIB = 1024 * 1024
BLOCK = os.urandom(MIB)
BOUNDARY = "threadline-benchmark-boundary"


def memory_kib(pid: int, field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak so far) of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found for pid {pid}")


class GeneratedFile:
    """``size`` bytes of a repeated random block, read like a file (for MinIO)."""

    def __init__(self, size: int) -> None:
        self._left = size

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        out = (BLOCK * (n // MIB + 1))[:n] if n > MIB else BLOCK[:n]
        self._left -= len(out)
        return out


def multipart_body(size: int, filename: str) -> Iterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    left = size
    while left > 0:
        chunk = BLOCK[: min(MIB, left)]
        left -= len(chunk)
        yield chunk
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


class ServiceClient:
    """Transfers through the service with urllib3, the HTTP client ``minio`` itself uses, so
    both sides of each ratio pay the same client cost (a pure-Python client would dominate)."""

    def __init__(self, url: str, token: str, timeout: float) -> None:
        self._url = url
        self._headers = {"Authorization": f"Bearer {token}"}
        self._http = urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout))

    def upload(self, size: int, filename: str) -> tuple[str, float]:
        started = time.perf_counter()
        response = self._http.request(
            "POST",
            f"{self._url}/v1/accounts/{ACCOUNT}/documents",
            body=multipart_body(size, filename),
            headers=self._headers | {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            chunked=True,
        )
        elapsed = time.perf_counter() - started
        assert response.status == 201, response.data[:500]
        document = json.loads(response.data)["documents"][0]
        assert document["size"] == size, document
        return str(document["id"]), elapsed

    def wait_for_account(self, seconds: float = 60) -> None:
        """Uploads name an existing account: wait until the directory projection has it."""
        deadline = time.monotonic() + seconds
        while True:
            response = self._http.request(
                "POST",
                f"{self._url}/v1/accounts/{ACCOUNT}/documents",
                body=multipart_body(1, "probe.bin"),
                headers=self._headers
                | {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
                chunked=True,
            )
            if response.status == 201:
                return
            if response.status != 404 or time.monotonic() > deadline:
                raise SystemExit(f"cannot upload: {response.status} {response.data[:300]!r}")
            time.sleep(0.2)

    def download(self, document_id: str, size: int) -> float:
        started = time.perf_counter()
        response = self._http.request(
            "GET",
            f"{self._url}/v1/documents/{document_id}/content",
            headers=self._headers,
            preload_content=False,
        )
        received = 0
        try:
            assert response.status == 200, response.status
            for chunk in response.stream(MIB):
                received += len(chunk)
        finally:
            response.release_conn()
        assert received == size, (received, size)
        return time.perf_counter() - started

    def delete(self, document_id: str) -> None:
        self._http.request(
            "DELETE", f"{self._url}/v1/documents/{document_id}", headers=self._headers
        )


def minio_client() -> Minio:
    endpoint = urlsplit(os.environ["THREADLINE_S3_ENDPOINT"])
    return Minio(
        endpoint.netloc,
        access_key=os.environ.get("THREADLINE_S3_ACCESS_KEY", "threadline"),
        secret_key=os.environ["THREADLINE_S3_SECRET_KEY"],
        secure=endpoint.scheme == "https",
        region=os.environ.get("THREADLINE_S3_REGION", "us-east-1"),
    )


def direct_put(client: Minio, bucket: str, key: str, size: int, part_size: int) -> float:
    started = time.perf_counter()
    client.put_object(
        bucket,
        key,
        GeneratedFile(size),
        length=size,
        part_size=part_size,  # type: ignore[arg-type]
    )
    return time.perf_counter() - started


def direct_get(client: Minio, bucket: str, key: str, size: int) -> float:
    started = time.perf_counter()
    response = client.get_object(bucket, key)
    received = 0
    try:
        for chunk in response.stream(MIB):
            received += len(chunk)
    finally:
        response.close()
        response.release_conn()
    assert received == size
    return time.perf_counter() - started


def rate(size: int, seconds: float) -> float:
    return size / MIB / seconds


async def best_of(runs: int, measure: Callable[[], Any]) -> float:
    """Fastest of ``runs`` timings (the machine is shared; the best run is the least noisy)."""
    return min([await measure() for _ in range(runs)])


async def main(args: argparse.Namespace) -> None:
    firm = f"bench_{uuid.uuid4().hex[:8]}"
    part_size = 8 * MIB
    server = ServiceProcess(
        "documents",
        database=f"bench_documents_{firm}",
        group=f"bench-{firm}",
        env={"DOCUMENTS_UPLOAD_PART_SIZE_BYTES": str(part_size)},
    )
    url = server.url
    client = minio_client()
    bucket = os.environ.get("DOCUMENTS_S3_BUCKET", "threadline-documents")
    direct_key = f"benchmark/{firm}/direct"
    try:
        await server.start()
        token = mint_token(
            sub="st_mia", firm=firm, kind="staff", role="owner", accounts=[ACCOUNT], name="Mia"
        )
        size = args.mib * MIB
        service = ServiceClient(url, token, args.timeout)
        await publish(os.environ["THREADLINE_KAFKA_BOOTSTRAP_SERVERS"], demo_directory(firm))
        await asyncio.to_thread(service.wait_for_account)
        ids: list[str] = []

        def service_upload() -> float:
            document_id, seconds = service.upload(size, "bench.bin")
            ids.append(document_id)
            return seconds

        up = await best_of(args.runs, lambda: asyncio.to_thread(service_upload))
        down = await best_of(args.runs, lambda: asyncio.to_thread(service.download, ids[-1], size))
        direct_up = await best_of(
            args.runs,
            lambda: asyncio.to_thread(direct_put, client, bucket, direct_key, size, part_size),
        )
        direct_down = await best_of(
            args.runs, lambda: asyncio.to_thread(direct_get, client, bucket, direct_key, size)
        )
        print(f"file size: {args.mib} MiB, best of {args.runs} runs, part size 8 MiB")
        print(
            f"upload:   service {rate(size, up):7.1f} MiB/s   direct MinIO "
            f"{rate(size, direct_up):7.1f} MiB/s   ratio {direct_up / up:.2f}"
        )
        print(
            f"download: service {rate(size, down):7.1f} MiB/s   direct MinIO "
            f"{rate(size, direct_down):7.1f} MiB/s   ratio {direct_down / down:.2f}"
        )

        big = args.big_mib * MIB
        before = memory_kib(server.pid, "VmRSS")
        big_id, big_up = await asyncio.to_thread(service.upload, big, "big.bin")
        big_down = await asyncio.to_thread(service.download, big_id, big)
        peak = memory_kib(server.pid, "VmHWM")
        print(
            f"{args.big_mib} MiB through the service: upload {rate(big, big_up):.1f} MiB/s, "
            f"download {rate(big, big_down):.1f} MiB/s; service RSS before "
            f"{before / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB "
            f"(+{(peak - before) / 1024:.0f} MiB)"
        )
        for document_id in [*ids, big_id]:
            await asyncio.to_thread(service.delete, document_id)
    finally:
        await asyncio.to_thread(client.remove_object, bucket, direct_key)
        await server.stop(grace_seconds=20)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="throughput file size (MiB)")
    parser.add_argument("--big-mib", type=int, default=1024, help="memory test file (MiB)")
    parser.add_argument("--runs", type=int, default=2, help="timed runs per measurement")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per transfer")
    asyncio.run(main(parser.parse_args()))
