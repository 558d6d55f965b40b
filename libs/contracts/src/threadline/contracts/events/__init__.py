"""Every event model, by producer. Importing this package registers the whole catalogue."""

from threadline.contracts.events import (
    common,
    directory,
    documents,
    messaging,
    pipeline,
    reminders,
    tasks,
)

__all__ = ["common", "directory", "documents", "messaging", "pipeline", "reminders", "tasks"]
