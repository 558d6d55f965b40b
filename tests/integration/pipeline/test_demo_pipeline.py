"""``threadline-demo-pipeline`` (run by ``./threadline up``) against real services."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from fastapi import FastAPI

from threadline.devtools.demo_pipeline import PIPELINE_NAME, set_up

from ..conftest import ServiceFactory

pytestmark = pytest.mark.integration


async def test_the_demo_pipeline_is_set_up_once(
    start_service: ServiceFactory,
    serve_http: Callable[[FastAPI], Awaitable[str]],
    run_id: str,
) -> None:
    messaging, _ = await start_service("messaging")
    pipeline, _ = await start_service("pipeline")
    urls = {"messaging": await serve_http(messaging), "pipeline": await serve_http(pipeline)}
    firm = f"firm_{run_id}"

    first = await asyncio.to_thread(set_up, firm=firm, **urls)
    again = await asyncio.to_thread(set_up, firm=firm, **urls)

    assert first["name"] == PIPELINE_NAME
    assert [s["name"] for s in first["stages"]] == ["Waiting for documents", "Preparing", "Review"]
    waiting = first["stages"][0]
    assert waiting["automove"] is True
    assert [a["mode"] for a in waiting["automations"]] == ["reply_to_latest"]
    assert again["pipeline_id"] == first["pipeline_id"]
