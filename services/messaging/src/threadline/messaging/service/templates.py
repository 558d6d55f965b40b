"""Chat templates (P1): firm-scoped CRUD, and rendering a template for one recipient.

Rendering is one function, :func:`render`, used by thread creation, by the preview and by
bulk jobs, so a preview shows exactly what a thread gets. Rendering fills the shortcodes
(see :mod:`threadline.messaging.shortcodes`) and then passes the message through the same
sanitiser as every message body.

::

    MessagingError (domain)
    ├── TemplateNotFound    404 — absent, or another firm's
    ├── ActionForbidden     403 — clients; staff without ``manage_templates`` changing one
    ├── TemplateConflict    409 — a concurrent edit won; reload and retry
    └── InvalidTemplate     422 — unknown shortcodes, too many templates, empty content
"""

from __future__ import annotations

import builtins
import functools
from dataclasses import dataclass, replace
from datetime import date

from threadline.contracts.events.messaging import ReminderSettings
from threadline.kit.auth import Principal
from threadline.kit.directory import MongoDirectory
from threadline.kit.errors import Conflict, NotFound
from threadline.kit.ids import Document, new_id, utc_now
from threadline.kit.policy import can_access_account
from threadline.messaging.domain import (
    ActionForbidden,
    InvalidMessage,
    MessagingError,
    ThreadNotFound,
)
from threadline.messaging.richtext import MessageBody, sanitize_html
from threadline.messaging.service.compose import MessageDraft
from threadline.messaging.shortcodes import Recipient, render_html, render_text, unknown_shortcodes
from threadline.messaging.store.templates import MongoTemplateStore

__all__ = [
    "MANAGE_TEMPLATES",
    "MAX_SUBJECT_CHARS",
    "MAX_TASK_CHARS",
    "MAX_TEMPLATES_PER_FIRM",
    "Content",
    "InvalidTemplate",
    "Rendered",
    "Sender",
    "TemplateConflict",
    "TemplateNotFound",
    "TemplateService",
    "addressed_contacts",
    "check_shortcodes",
    "check_staff",
    "render",
]

MANAGE_TEMPLATES = "manage_templates"
MAX_TEMPLATES_PER_FIRM = 1000
MAX_SUBJECT_CHARS = 300
MAX_TASK_CHARS = 2000
MAX_NAME_CHARS = 200
DEFAULT_REMINDERS = ReminderSettings(enabled=False, days_between=3, max_reminders=1)


class TemplateNotFound(MessagingError, NotFound):
    pass


class InvalidTemplate(InvalidMessage):
    pass


class TemplateConflict(MessagingError, Conflict):
    pass


@dataclass(frozen=True)
class Content:
    """What a thread is created with before its shortcodes are filled."""

    subject: str
    html: str
    client_tasks: tuple[str, ...] = ()
    reminders: ReminderSettings = DEFAULT_REMINDERS


@dataclass(frozen=True)
class Rendered:
    """Content filled for one recipient, exactly as the thread gets it."""

    subject: str
    body: MessageBody
    client_tasks: tuple[str, ...]
    reminders: ReminderSettings


@dataclass(frozen=True)
class Sender:
    """The per-sender part of a recipient's shortcode values (looked up once per job)."""

    firm_name: str | None
    sender_name: str | None


def check_shortcodes(content: Content) -> None:
    """Raise InvalidTemplate (422) naming every unknown shortcode in ``content``."""
    unknown = unknown_shortcodes([content.subject, content.html, *content.client_tasks])
    if unknown:
        raise InvalidTemplate(
            f"Unknown shortcodes: {', '.join(f'[[{code}]]' for code in unknown)}. "
            "GET /v1/templates/shortcodes lists the known ones.",
            unknown_shortcodes=unknown,
        )


def _one_line(text: str, limit: int) -> str:
    return " ".join(text.split())[:limit]


def render(
    content: Content,
    *,
    sender: Sender,
    account: Document,
    contact_ids: list[str],
    today: date,
    max_body_bytes: int,
) -> Rendered:
    """Fill ``content`` for the addressed contacts of ``account`` (the one rendering path).

    Subjects are one line of at most 300 characters, tasks at most 2000 characters
    (longer values are cut); the message is sanitised like any message body (raises
    InvalidMessageBody when it ends up empty or too large).
    """
    names = {contact["contact_id"]: contact.get("name", "") for contact in account["contacts"]}
    recipient = Recipient(
        account_name=account.get("name"),
        contact_names=tuple(names.get(contact_id, "") for contact_id in contact_ids),
        firm_name=sender.firm_name,
        sender_name=sender.sender_name,
        today=today,
    )
    subject = _one_line(render_text(content.subject, recipient), MAX_SUBJECT_CHARS)
    if not subject:
        raise InvalidMessage("A thread needs a subject.")
    html = render_html(_sanitised_template(content.html), recipient)
    return Rendered(
        subject=subject,
        body=MessageBody.from_user_html(html, max_bytes=max_body_bytes),
        client_tasks=tuple(
            render_text(task, recipient).strip()[:MAX_TASK_CHARS] for task in content.client_tasks
        ),
        reminders=content.reminders,
    )


@functools.lru_cache(maxsize=32)
def _sanitised_template(html: str) -> str:
    """A template's message sanitised once, not once per recipient: a bulk job renders the
    same template for up to 10,000 accounts (this was 13 % of its worker's CPU). The
    filled-in result is sanitised again per recipient all the same."""
    return sanitize_html(html)


def addressed_contacts(
    account: Document | None, account_id: str, requested: tuple[str, ...]
) -> list[str]:
    """T2: the contacts a new thread addresses; only contacts with portal access activated
    can receive messages (all of them unless ``requested`` names some)."""
    if account is None:
        raise ThreadNotFound(f"Account {account_id} does not exist.")
    reachable = [c["contact_id"] for c in account["contacts"] if c["portal_activated"]]
    if not reachable:
        raise InvalidMessage(
            f"No contact of account {account_id} has portal access activated, so nobody "
            "could read this thread; activate a contact's portal access first."
        )
    if not requested:
        return reachable
    unreachable = [contact for contact in requested if contact not in reachable]
    if unreachable:
        raise InvalidMessage(
            "These contacts cannot receive messages (not contacts of the account, or "
            f"portal access not activated): {', '.join(unreachable)}."
        )
    return list(dict.fromkeys(requested))


def check_staff(principal: Principal) -> None:
    if not principal.is_staff:
        raise ActionForbidden("Templates are for firm staff only.")


def _check_can_manage(principal: Principal) -> None:
    check_staff(principal)
    if not (principal.is_owner_or_admin or principal.has_perm(MANAGE_TEMPLATES)):
        raise ActionForbidden(
            "Only owners, admins and staff with the manage_templates permission can "
            "change templates."
        )


def _reminders_document(reminders: ReminderSettings) -> Document:
    return reminders.model_dump()


def content_of(template: Document) -> Content:
    return Content(
        subject=template["subject"],
        html=template["html"],
        client_tasks=tuple(template["client_tasks"]),
        reminders=ReminderSettings(**template["reminders"]),
    )


class TemplateService:
    def __init__(
        self, *, store: MongoTemplateStore, directory: MongoDirectory, max_body_bytes: int
    ) -> None:
        self._store = store
        self._directory = directory
        self.max_body_bytes = max_body_bytes

    def _validated(self, content: Content) -> Content:
        """Sanitised, with every shortcode known (422 otherwise)."""
        check_shortcodes(content)
        body = MessageBody.from_user_html(content.html, max_bytes=self.max_body_bytes)
        subject = " ".join(content.subject.split())
        if not subject:
            raise InvalidTemplate("A template needs a subject.")
        tasks = tuple(task.strip() for task in content.client_tasks)
        if any(not task for task in tasks):
            raise InvalidTemplate("Client tasks cannot be blank.")
        return Content(
            subject=subject, html=body.html, client_tasks=tasks, reminders=content.reminders
        )

    async def create(self, principal: Principal, *, name: str, content: Content) -> Document:
        _check_can_manage(principal)
        name = " ".join(name.split())
        if not name:
            raise InvalidTemplate("A template needs a name.")
        content = self._validated(content)
        if await self._store.count(principal.firm) >= MAX_TEMPLATES_PER_FIRM:
            raise InvalidTemplate(
                f"A firm can keep at most {MAX_TEMPLATES_PER_FIRM} templates; delete unused ones."
            )
        now = utc_now()
        document: Document = {
            "_id": new_id(),
            "firm": principal.firm,
            "name": name,
            "subject": content.subject,
            "html": content.html,
            "client_tasks": list(content.client_tasks),
            "reminders": _reminders_document(content.reminders),
            "created_by": principal.sub,
            "created_at": now,
            "updated_at": now,
            "revision": 0,
        }
        await self._store.insert(document)
        return document

    async def get(self, principal: Principal, template_id: str) -> Document:
        check_staff(principal)
        found = await self._store.get(principal.firm, template_id)
        if found is None:
            raise TemplateNotFound(f"Template {template_id} does not exist.")
        return found

    async def page(
        self, principal: Principal, *, cursor: str | None, limit: int
    ) -> tuple[list[Document], str | None]:
        check_staff(principal)
        documents = await self._store.page(principal.firm, after=cursor, limit=limit)
        page = documents[:limit]
        return page, (page[-1]["_id"] if len(documents) > limit else None)

    async def update(
        self,
        principal: Principal,
        template_id: str,
        *,
        name: str | None,
        subject: str | None,
        html: str | None,
        client_tasks: tuple[str, ...] | None,
        reminders: ReminderSettings | None,
    ) -> Document:
        """Change the given fields (``None`` keeps one); 409 if a concurrent edit won."""
        _check_can_manage(principal)
        current = await self.get(principal, template_id)
        merged = content_of(current)
        merged = Content(
            subject=merged.subject if subject is None else subject,
            html=merged.html if html is None else html,
            client_tasks=merged.client_tasks if client_tasks is None else client_tasks,
            reminders=merged.reminders if reminders is None else reminders,
        )
        content = self._validated(merged)
        changes: Document = {
            "subject": content.subject,
            "html": content.html,
            "client_tasks": list(content.client_tasks),
            "reminders": _reminders_document(content.reminders),
            "updated_at": utc_now(),
        }
        if name is not None:
            changes["name"] = " ".join(name.split())
            if not changes["name"]:
                raise InvalidTemplate("A template needs a name.")
        if not await self._store.update(
            principal.firm, template_id, revision=current["revision"], changes=changes
        ):
            raise TemplateConflict("The template changed meanwhile; reload and try again.")
        return current | changes | {"revision": current["revision"] + 1}

    async def duplicate(self, principal: Principal, template_id: str) -> Document:
        _check_can_manage(principal)
        original = await self.get(principal, template_id)
        return await self.create(
            principal,
            name=f"Copy of {original['name']}"[:MAX_NAME_CHARS],
            content=content_of(original),
        )

    async def delete(self, principal: Principal, template_id: str) -> None:
        """Threads created from it keep what they were created with (they copied it)."""
        _check_can_manage(principal)
        if not await self._store.delete(principal.firm, template_id):
            raise TemplateNotFound(f"Template {template_id} does not exist.")

    async def sender(self, principal: Principal) -> Sender:
        staff = await self._directory.staff_member(principal.firm, principal.sub) or {}
        return Sender(
            firm_name=await self._directory.firm_name(principal.firm),
            sender_name=staff.get("name") or principal.name or None,
        )

    async def preview(
        self, principal: Principal, template_id: str, *, account_id: str
    ) -> tuple[Rendered, builtins.list[str]]:
        """What a thread created from the template for ``account_id`` would get (P1)."""
        template = await self.get(principal, template_id)
        if not can_access_account(principal, firm=principal.firm, account_id=account_id):
            raise ThreadNotFound(f"Account {account_id} does not exist.")
        account = await self._directory.account(principal.firm, account_id)
        contacts = addressed_contacts(account, account_id, ())
        assert account is not None
        rendered = render(
            content_of(template),
            sender=await self.sender(principal),
            account=account,
            contact_ids=contacts,
            today=utc_now().date(),
            max_body_bytes=self.max_body_bytes,
        )
        return rendered, contacts

    async def fill(
        self,
        principal: Principal,
        *,
        template_id: str,
        subject: str | None,
        html: str | None,
        client_tasks: tuple[str, ...] | None,
        reminders: ReminderSettings | None,
        account: Document,
        contact_ids: builtins.list[str],
    ) -> Rendered:
        """Thread creation from a template: each field given (not ``None``) overrides the
        template's; all of it is rendered for the addressed contacts."""
        if not principal.is_staff:
            raise ActionForbidden("Only firm staff create threads from templates.")
        base = content_of(await self.get(principal, template_id))
        content = Content(
            subject=base.subject if subject is None else subject,
            html=base.html if html is None else html,
            client_tasks=base.client_tasks if client_tasks is None else client_tasks,
            reminders=base.reminders if reminders is None else reminders,
        )
        check_shortcodes(content)
        return render(
            content,
            sender=await self.sender(principal),
            account=account,
            contact_ids=contact_ids,
            today=utc_now().date(),
            max_body_bytes=self.max_body_bytes,
        )


def draft_of(rendered: Rendered, draft: MessageDraft | None) -> MessageDraft:
    """The first message: the rendered body, with the request's other message fields."""
    return replace(draft or MessageDraft(html=""), html=rendered.body.html)
