"""Tasks app factory: ``uvicorn --factory threadline.tasks.main:create_app``.

Only the platform plumbing (health, auth, Kafka, Mongo, outbox relay) exists so far; the
tasks features arrive with their own issue.
"""

from __future__ import annotations

from fastapi import FastAPI

from threadline.kit.app import create_service_app
from threadline.tasks.settings import Settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(settings or Settings(), title="Threadline tasks")
