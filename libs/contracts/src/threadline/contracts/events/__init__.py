"""Every event model, by producer. Importing this package registers the whole catalogue."""

from threadline.contracts.events import directory

__all__ = ["directory"]
