"""E-mails: rendering (multipart text + HTML, every user string escaped) and SMTP delivery.

Rendering is pure: a queued mail plus the firm's "show message context" setting and the
thread's current tasks give the message (N1, K7). ``SmtpMailer`` sends through a few kept-open
aiosmtplib connections and sorts failures into transient (retry later) and permanent.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any
from urllib.parse import quote

import aiosmtplib

__all__ = [
    "MailTemplates",
    "PermanentMailError",
    "SmtpMailer",
    "TransientMailError",
    "render",
]

MAX_TEXT_CHARS = 4000
"""Longest message excerpt an e-mail carries; the full text is one click away."""


class TransientMailError(Exception):
    """The relay is down, slow or said "try again later" (4xx): retry with backoff."""


class PermanentMailError(Exception):
    """The relay refused the mail for good (5xx): retrying cannot help."""


def _line(value: object, limit: int = 300) -> str:
    """A single header-safe line: no CR/LF (no header injection), bounded."""
    return " ".join(str(value).split())[:limit]


def _excerpt(text: str) -> str:
    return text if len(text) <= MAX_TEXT_CHARS else text[: MAX_TEXT_CHARS - 1] + "…"


@dataclass(frozen=True)
class MailTemplates:
    """Where links point and who the mail is from."""

    mail_from: str
    portal_base_url: str
    staff_app_base_url: str

    def thread_link(self, audience: str, thread_id: str) -> str:
        base = self.portal_base_url if audience == "client" else self.staff_app_base_url
        return f"{base.rstrip('/')}/threads/{quote(thread_id, safe='')}"


def _subject(kind: str, mail: Mapping[str, Any], who: str, subject_line: str) -> str:
    count = len(mail.get("messages") or [])
    if kind == "reminder":
        return f"Reminder: “{subject_line}” is waiting for you"
    if kind == "staff_mention":
        return f"{who} mentioned you in “{subject_line}”"
    if kind == "staff_message":
        account = _line(mail["thread"].get("account_name") or "", 120)
        return f"{who}{f' ({account})' if account else ''} wrote in “{subject_line}”"
    noun = "a new message" if count <= 1 else f"{count} new messages"
    return f"{who} sent you {noun} in “{subject_line}”"


def _messages_part(messages: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    text: list[str] = []
    markup: list[str] = []
    for message in messages:
        author = _line(message.get("author_name") or "Someone", 80)
        body = _excerpt(str(message.get("text") or ""))
        text += [f"{author}:", body, ""]
        markup.append(
            f"<p><strong>{html.escape(author)}</strong></p>"
            f'<blockquote style="white-space:pre-wrap">{html.escape(body)}</blockquote>'
        )
    return text, markup


def _tasks_part(tasks: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """K7: the thread's tasks as a checklist."""
    done = sum(1 for task in tasks if task.get("done"))
    heading = f"Your tasks ({done}/{len(tasks)} done):"
    text = [heading]
    items: list[str] = []
    for task in tasks:
        task_text = _line(task.get("text") or "", 500)
        text.append(f"[{'x' if task.get('done') else ' '}] {task_text}")
        items.append(f"<li>{'☑' if task.get('done') else '☐'} {html.escape(task_text)}</li>")
    text.append("")
    markup = [
        f"<p>{html.escape(heading)}</p>",
        f'<ul style="list-style:none">{"".join(items)}</ul>',
    ]
    return text, markup


def render(
    mail: Mapping[str, Any],
    *,
    templates: MailTemplates,
    show_context: bool,
    tasks: Sequence[Mapping[str, Any]],
) -> EmailMessage:
    """The e-mail for a queued mail document (see ``MongoMailQueue``).

    Client e-mails (kinds ``client_message`` and ``reminder``) show message text and the
    task checklist only when ``show_context`` (K7); otherwise who wrote in which thread and
    a link, nothing more. Staff e-mails show the text.
    """
    kind = str(mail["kind"])
    audience = "staff" if kind.startswith("staff_") else "client"
    thread = mail["thread"]
    messages: list[Mapping[str, Any]] = list(mail.get("messages") or [])
    subject_line = _line(thread.get("subject") or "a conversation", 150)
    authors = sorted({_line(m.get("author_name") or "Someone", 80) for m in messages})
    who = ", ".join(authors) or "Your firm"
    subject = _subject(kind, mail, who, subject_line)
    intro = (
        f"{who} wrote to you in “{subject_line}” and is waiting for your answer."
        if kind == "reminder"
        else subject + "."
    )
    link = templates.thread_link(audience, str(thread["thread_id"]))

    text_parts = [intro, ""]
    html_parts = [f"<p>{html.escape(intro)}</p>"]
    if audience == "staff" or show_context:
        text, markup = _messages_part(messages)
        text_parts += text
        html_parts += markup
        if audience == "client" and tasks:
            text, markup = _tasks_part(tasks)
            text_parts += text
            html_parts += markup
    text_parts.append(f"Open the conversation: {link}")
    html_parts.append(f'<p><a href="{html.escape(link, quote=True)}">Open the conversation</a></p>')

    recipient = mail["to"]
    digest = hashlib.sha256(str(mail["_id"]).encode()).hexdigest()[:40]
    message = EmailMessage()
    message["From"] = templates.mail_from
    message["To"] = formataddr((_line(recipient.get("name") or "", 80), str(recipient["email"])))
    message["Subject"] = _line(subject, 250)
    message["Date"] = format_datetime(mail["created_at"])
    message["Message-ID"] = f"<{digest}@threadline>"
    message["X-Threadline-Mail-Id"] = _line(mail["_id"], 250)
    message.set_content("\n".join(text_parts))
    message.add_alternative(
        "<!doctype html><html><body>" + "".join(html_parts) + "</body></html>", subtype="html"
    )
    return message


class SmtpMailer:
    """Sends through up to ``connections`` kept-open SMTP connections to one relay."""

    def __init__(self, *, host: str, port: int, timeout: float, connections: int) -> None:
        self._host = host
        self._port = port
        self._timeout = timeout
        self._idle: asyncio.LifoQueue[aiosmtplib.SMTP | None] = asyncio.LifoQueue()
        for _ in range(connections):
            self._idle.put_nowait(None)

    async def send(self, message: EmailMessage) -> None:
        """Deliver ``message``; raise TransientMailError or PermanentMailError on failure."""
        client = await self._idle.get()
        try:
            if client is None or not client.is_connected:
                client = aiosmtplib.SMTP(
                    hostname=self._host, port=self._port, timeout=self._timeout, start_tls=False
                )
                await client.connect()
            await client.send_message(message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            await _discard(client)
            client = None
            if all(error.code < 500 for error in exc.recipients):
                raise TransientMailError(str(exc)) from exc
            raise PermanentMailError(str(exc)) from exc
        except aiosmtplib.SMTPResponseException as exc:
            await _discard(client)
            client = None
            if exc.code >= 500:
                raise PermanentMailError(f"{exc.code} {exc.message}") from exc
            raise TransientMailError(f"{exc.code} {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            await _discard(client)
            client = None
            raise TransientMailError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            self._idle.put_nowait(client)

    async def close(self) -> None:
        while not self._idle.empty():
            await _discard(self._idle.get_nowait())


async def _discard(client: aiosmtplib.SMTP | None) -> None:
    if client is not None and client.is_connected:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()
