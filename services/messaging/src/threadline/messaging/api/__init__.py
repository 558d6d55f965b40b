"""Messaging HTTP routes."""

from threadline.messaging.api.bulk import router as bulk_router
from threadline.messaging.api.messages import router as messages_router
from threadline.messaging.api.settings import router as settings_router
from threadline.messaging.api.templates import router as templates_router
from threadline.messaging.api.threads import router as threads_router

ROUTERS = (threads_router, messages_router, settings_router, templates_router, bulk_router)

__all__ = ["ROUTERS"]
