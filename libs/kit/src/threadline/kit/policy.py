"""The one access policy for accounts, threads and internal content (SPEC T7, M3).

Every rule takes the principal and plain facts about the resource, so services decide
access the same way whatever their storage. Firm scoping is checked first everywhere:
nothing crosses tenants.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from threadline.kit.auth import Principal

__all__ = [
    "MANAGE_DOCUMENTS",
    "VIEW_ALL_ACCOUNTS",
    "ThreadFacts",
    "can_access_account",
    "can_see_internal",
    "can_view_thread",
    "visible_account_filter",
]

VIEW_ALL_ACCOUNTS = "view_all_accounts"
MANAGE_DOCUMENTS = "manage_documents"


@dataclass(frozen=True)
class ThreadFacts:
    """What the policy needs to know about a thread."""

    firm: str
    account_id: str
    mentioned_staff: Collection[str] = ()
    archived: bool = False


def can_access_account(principal: Principal, *, firm: str, account_id: str) -> bool:
    """Clients: their own accounts. Staff: owners, admins, view-all, or assigned."""
    if principal.firm != firm:
        return False
    if principal.is_client:
        return account_id in principal.accounts
    return (
        principal.is_owner_or_admin
        or principal.has_perm(VIEW_ALL_ACCOUNTS)
        or account_id in principal.accounts
    )


def can_view_thread(principal: Principal, thread: ThreadFacts) -> bool:
    """T7: account access, or (staff only) being mentioned in the thread."""
    if can_access_account(principal, firm=thread.firm, account_id=thread.account_id):
        return True
    return (
        principal.firm == thread.firm
        and principal.is_staff
        and principal.sub in thread.mentioned_staff
    )


def can_see_internal(principal: Principal) -> bool:
    """M3: internal messages, attachments and anything derived from them are staff-only."""
    return principal.is_staff


def visible_account_filter(principal: Principal) -> frozenset[str] | None:
    """Accounts a list query must be restricted to; ``None`` means every account of the firm.

    Staff who see only assigned accounts may still see threads they were mentioned in;
    list queries add that condition themselves.
    """
    if principal.is_staff and (
        principal.is_owner_or_admin or principal.has_perm(VIEW_ALL_ACCOUNTS)
    ):
        return None
    return principal.accounts
