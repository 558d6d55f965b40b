"""Value types shared by several producers' events.

Kept in one place so that "who did it" has the same shape on every topic: consumers such
as reminders render "a client / a staff member did X" (K5) without per-producer mapping.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = ["AccountId", "Actor", "Id", "ThreadId", "UserKind"]

Id = Annotated[str, StringConstraints(min_length=1)]
"""An opaque, non-empty identifier; ids are strings everywhere so producers own their format."""

ThreadId = Annotated[Id, Field(description="Thread id.", examples=["th_lee_2025_docs"])]
AccountId = Annotated[Id, Field(description="Client account id.", examples=["acc_lee_family"])]

UserKind = Literal["staff", "client"]
"""Staff = firm owner, admins and team members; client = a contact user of an account."""


class Actor(BaseModel):
    """The user who caused an event, with their kind so consumers can apply client rules."""

    model_config = ConfigDict(frozen=True)

    user_id: Id = Field(description="User id (the `sub` of their tokens).", examples=["st_mia"])
    kind: UserKind = Field(description="Whether the user is staff or a client.", examples=["staff"])
    name: str | None = Field(
        default=None,
        description="Display name at the time of the event, when the producer knows it.",
        examples=["Mia Chen"],
    )
