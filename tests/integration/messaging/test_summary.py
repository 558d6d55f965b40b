"""N3: a client's summary of what waits for them (messaging's `/v1/me/summary`)."""

from __future__ import annotations

import pytest

from ..conftest import eventually
from .conftest import Firm

pytestmark = pytest.mark.integration


async def test_n3_summary_counts_threads_with_unread_firm_messages_until_read(firm: Firm) -> None:
    async def summary(who: str = "client") -> dict[str, int]:
        response = await firm.call(who, "GET", "/v1/me/summary")
        assert response.status_code == 200, response.text
        return dict(response.json())

    start = await summary()
    first = await firm.new_thread()
    second = await firm.new_thread()
    await firm.post("assigned member", second["id"], html="<p>one more</p>")
    await firm.post("assigned member", second["id"], html="<p>internal</p>", internal=True)
    after = await eventually(summary, until=lambda s: s["threads_with_unread"] >= 2)
    assert after["threads_with_unread"] - start["threads_with_unread"] == 2
    assert after["unread_messages"] - start["unread_messages"] == 3  # the internal one is hidden
    read = await firm.call("client", "POST", f"/v1/threads/{first['id']}/read", json={})
    assert read.status_code == 200, read.text
    assert (await summary())["threads_with_unread"] == after["threads_with_unread"] - 1
    staff = await firm.call("owner", "GET", "/v1/me/summary")
    assert staff.status_code == 403
