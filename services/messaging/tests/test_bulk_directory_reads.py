"""P2: a large bulk job reads the firm's directory as it goes; each batch waits for its own
accounts only (the end of the read tells that the rest do not exist), and the read stops a
little ahead of the job unless a batch waits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from threadline.messaging.service.bulk import _WholeFirm


class GatedDirectory:
    """Returns the firm's accounts in the given order, holding back everything after
    ``released`` of them until the test releases more; counts what was read."""

    def __init__(self, order: list[str], *, fail_at: int | None = None) -> None:
        self.order = order
        self.released = len(order)
        self.fail_at = fail_at
        self.read = 0
        self.closed = False
        self._more = asyncio.Event()

    def release(self, count: int) -> None:
        self.released = count
        self._more.set()

    def accounts_of_firm(self, firm: str, *, batch_size: int) -> GatedDirectory:
        self.firm = firm
        return self

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._accounts()

    async def _accounts(self) -> AsyncIterator[dict[str, Any]]:
        for index, account_id in enumerate(self.order):
            while index >= self.released:
                self._more.clear()
                await self._more.wait()
            if index == self.fail_at:
                raise ConnectionError("the storage server went away")
            self.read += 1
            yield {"account_id": account_id, "firm": self.firm}

    async def close(self) -> None:
        self.closed = True


def job(account_ids: list[str]) -> Any:
    return SimpleNamespace(account_ids=account_ids, principal=SimpleNamespace(firm="f1"))


async def settled() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


async def test_p2_a_batch_starts_once_its_accounts_were_read_not_the_whole_directory() -> None:
    wanted = [f"a{i}" for i in range(6)]
    directory = GatedDirectory([*wanted, "other_1", "other_2"])
    directory.release(0)
    reads = _WholeFirm(directory, job([*wanted, "missing"]), 0)  # type: ignore[arg-type]
    first = asyncio.create_task(reads.accounts(0, 3, following=3))
    directory.release(2)
    await settled()
    assert not first.done()  # a2 not read yet
    directory.release(3)
    assert sorted(await asyncio.wait_for(first, 5)) == ["a0", "a1", "a2"]

    last = asyncio.create_task(reads.accounts(3, 7, following=3))
    directory.release(7)
    await settled()
    assert not last.done()  # "missing" may still come until the read ends
    directory.release(8)
    assert sorted(await asyncio.wait_for(last, 5)) == ["a3", "a4", "a5"]
    await settled()
    assert directory.closed


async def test_p2_the_read_stops_ahead_of_the_job_until_a_batch_asks_for_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_WholeFirm, "READ_AHEAD", 3)
    ids = [f"a{i}" for i in range(20)]
    directory = GatedDirectory(ids)
    reads = _WholeFirm(directory, job(ids), 0)  # type: ignore[arg-type]
    await settled()
    assert directory.read == 3
    assert sorted(await asyncio.wait_for(reads.accounts(0, 2, following=2), 5)) == ["a0", "a1"]
    await settled()
    assert directory.read == 5  # two accounts asked for, three beyond them
    batch = await asyncio.wait_for(reads.accounts(10, 12, following=2), 5)
    assert sorted(batch) == ["a10", "a11"]  # read on as far as the batch needed
    await settled()
    assert directory.read == 15
    reads.close()


async def test_p2_a_failed_directory_read_fails_the_batch_waiting_for_it() -> None:
    directory = GatedDirectory(["a0", "a1", "a2"], fail_at=1)
    reads = _WholeFirm(directory, job(["a0", "a1", "a2"]), 0)  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(reads.accounts(0, 3, following=0), 5)
    reads.close()
