"""Per-item claims (``kit.leases.ItemClaims``): one holder per item, renewal, finishing and
releasing by the holder only, takeover once the lease has passed. The fake collection
accepts flat filters only, so these also check the claims stay within what FerretDB runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from threadline.kit.leases import ItemClaims

from .fakes import FlatFilterCollection

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=60)


@pytest.fixture
def items() -> FlatFilterCollection:
    collection = FlatFilterCollection()
    for number, due in enumerate([T0, T0 - timedelta(minutes=1), T0 + timedelta(hours=1)]):
        collection.documents[f"item{number}"] = {
            "_id": f"item{number}",
            "pending": True,
            "due_at": due,
            "claim": None,
        }
    return collection


def _claims(items: FlatFilterCollection) -> ItemClaims:
    collection: Any = items
    return ItemClaims(collection)


async def test_one_holder_per_item_until_its_lease_passes_then_takeover(
    items: FlatFilterCollection,
) -> None:
    claims = _claims(items)
    assert await claims.claim("item0", token="a", now=T0, lease=LEASE)
    assert not await claims.claim("item0", token="b", now=T0 + timedelta(seconds=59), lease=LEASE)
    assert await claims.renew("item0", token="a", now=T0 + timedelta(seconds=59), lease=LEASE)
    later = T0 + timedelta(seconds=118)
    assert not await claims.claim("item0", token="b", now=later, lease=LEASE), "renewed"
    gone = T0 + timedelta(seconds=120)  # "a" died without renewing
    assert await claims.claim("item0", token="b", now=gone, lease=LEASE)
    assert not await claims.renew("item0", token="a", now=gone, lease=LEASE)
    assert not await claims.finish("item0", token="a", update={"$set": {"pending": False}})
    assert items.documents["item0"]["pending"] is True, "a lost claim changes nothing"
    assert await claims.finish(
        "item0", token="b", update={"$set": {"pending": False}, "$inc": {"attempts": 1}}
    )
    assert items.documents["item0"] == {
        "_id": "item0",
        "pending": False,
        "due_at": gone + LEASE,
        "claim": None,
        "attempts": 1,
    }


async def test_a_released_item_is_claimable_at_once_and_only_the_holder_deletes(
    items: FlatFilterCollection,
) -> None:
    claims = _claims(items)
    assert await claims.claim("item1", token="a", now=T0, lease=LEASE)
    assert not await claims.release("item1", token="b", now=T0)
    assert await claims.release("item1", token="a", now=T0)
    assert await claims.claim("item1", token="b", now=T0, lease=LEASE)
    assert not await claims.delete("item1", token="a")
    assert await claims.delete("item1", token="b")
    assert "item1" not in items.documents


async def test_a_claim_on_the_due_time_read_misses_once_the_item_was_rescheduled(
    items: FlatFilterCollection,
) -> None:
    claims = _claims(items)
    [first, *_] = await claims.due({}, now=T0, limit=10)
    assert first == {"_id": "item1", "due_at": T0 - timedelta(minutes=1)}, "longest due first"
    items.documents["item1"]["due_at"] = T0 - timedelta(seconds=1)  # re-armed meanwhile
    assert not await claims.claim("item1", token="a", now=T0, lease=LEASE, due_at=first["due_at"])
    assert not await claims.claim("item2", token="a", now=T0, lease=LEASE), "not due yet"


async def test_a_batch_claim_returns_exactly_the_due_items_it_won(
    items: FlatFilterCollection,
) -> None:
    claims = _claims(items)
    assert await claims.claim("item0", token="other", now=T0, lease=LEASE)
    won = await claims.claim_due(
        {"pending": True}, token="batch", now=T0, lease=LEASE, limit=10, also_set={"open": False}
    )
    assert [(item["_id"], item["open"], item["due_at"]) for item in won] == [
        ("item1", False, T0 + LEASE)
    ]
    assert items.documents["item0"]["claim"] == "other"
    assert (
        await claims.claim_due({"pending": True}, token="again", now=T0, lease=LEASE, limit=10)
        == []
    )
