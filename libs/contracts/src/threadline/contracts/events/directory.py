"""Directory events: the firm, its accounts, contacts and staff, owned by the surrounding
platform.

Threadline never edits the directory; messaging and reminders keep projections of it.
Account events are keyed by account id, firm and staff events by firm id.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from threadline.contracts.envelope import EventData
from threadline.contracts.registry import register

__all__ = [
    "AccountRemoved",
    "AccountUpserted",
    "Contact",
    "FirmUpserted",
    "StaffMemberRemoved",
    "StaffMemberUpserted",
]


class Contact(BaseModel):
    """A contact person of a client account who may use the client portal."""

    model_config = ConfigDict(frozen=True)

    contact_id: str = Field(
        description="Contact user id (the `sub` of their tokens).", examples=["ct_ann"]
    )
    name: str = Field(description="Display name.", examples=["Ann Lee"])
    email: str = Field(
        description="E-mail address for notifications.", examples=["ann@example.com"]
    )
    portal_activated: bool = Field(
        description="Portal access enabled and the login activated (T2): may receive messages.",
        examples=[True],
    )
    notify: bool = Field(
        description="The contact's Notify flag: receives e-mail notifications (N1).",
        examples=[True],
    )


@register
class AccountUpserted(EventData):
    """A client account was created or changed; carries the full current snapshot."""

    event_type = "directory.account.upserted"
    key_field = "account_id"

    account_id: str = Field(description="Client account id.", examples=["acc_lee_family"])
    name: str = Field(description="Account display name.", examples=["Lee Family"])
    contacts: list[Contact] = Field(
        description="All contacts of the account.",
        examples=[
            [
                {
                    "contact_id": "ct_ann",
                    "name": "Ann Lee",
                    "email": "ann@example.com",
                    "portal_activated": True,
                    "notify": True,
                }
            ]
        ],
    )
    assigned_staff: list[str] = Field(
        description="Staff user ids assigned to the account (T7).", examples=[["st_mia"]]
    )


@register
class AccountRemoved(EventData):
    """A client account was deleted from the directory."""

    event_type = "directory.account.removed"
    key_field = "account_id"

    account_id: str = Field(description="Client account id.", examples=["acc_lee_family"])


@register
class FirmUpserted(EventData):
    """A firm was created or renamed (the envelope's ``firm`` is its id)."""

    event_type = "directory.firm.upserted"
    key_field = None

    name: str = Field(
        description="The firm's display name (the `[[firm.name]]` shortcode, P1).",
        examples=["Chen & Berg CPAs"],
    )


@register
class StaffMemberUpserted(EventData):
    """A firm user (owner, admin or team member) was created or changed."""

    event_type = "directory.staff.upserted"
    key_field = None

    user_id: str = Field(description="Staff user id.", examples=["st_mia"])
    name: str = Field(description="Display name.", examples=["Mia Chen"])
    email: str = Field(description="E-mail address.", examples=["mia@firm.example"])
    role: Literal["owner", "admin", "member"] = Field(description="Firm role.", examples=["member"])
    permissions: list[str] = Field(
        default_factory=list,
        description="Extra permissions, e.g. `view_all_accounts`, `manage_documents`.",
        examples=[["manage_documents"]],
    )
    active: bool = Field(
        default=True, description="False once the user left the firm.", examples=[True]
    )


@register
class StaffMemberRemoved(EventData):
    """A firm user was deleted; their mentions and assignments no longer grant access (T7)."""

    event_type = "directory.staff.removed"
    key_field = None

    user_id: str = Field(description="Staff user id.", examples=["st_mia"])
