"""An SMTP server that accepts every message and keeps it as a file, for local runs and tests.

Each message becomes `<mail dir>/<UTC timestamp>-<uuid>.eml`: the raw message as received,
preceded by `X-MailFrom` / `X-RcptTo` headers carrying the SMTP envelope (Bcc recipients
appear nowhere else). Files are written under a temporary name and renamed, so a reader never
sees half a message. `read_mails` gives them back as parsed `EmailMessage`s, oldest first.

Run: `threadline-smtp-sink [--host 127.0.0.1] [--port 1025] [--mail-dir DIR]`; defaults come
from THREADLINE_SMTP_HOST, THREADLINE_SMTP_PORT and THREADLINE_MAIL_DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import uuid
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["MailDirHandler", "main", "read_mails", "serve"]


class MailDirHandler:
    """aiosmtpd handler that stores each message in `mail_dir` and answers 250."""

    def __init__(self, mail_dir: Path) -> None:
        self.mail_dir = mail_dir
        mail_dir.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.store(envelope)
        return "250 Message accepted for delivery"

    def store(self, envelope: Envelope) -> Path:
        """Write one message atomically; returns its path."""
        content = envelope.original_content or b""
        headers = (
            f"X-MailFrom: {envelope.mail_from}\r\nX-RcptTo: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{stamp}-{uuid.uuid4()}.eml"
        temp = self.mail_dir / f".{name}.tmp"
        with temp.open("wb") as handle:
            handle.write(headers + content)
            handle.flush()
            os.fsync(handle.fileno())
        target = self.mail_dir / name
        temp.replace(target)
        return target


def read_mails(mail_dir: Path | str) -> list[EmailMessage]:
    """Every stored message in `mail_dir`, parsed, in order of arrival (empty if none)."""
    directory = Path(mail_dir)
    if not directory.is_dir():
        return []
    parser = BytesParser(policy=policy.default)
    messages: list[EmailMessage] = []
    for path in sorted(directory.glob("*.eml")):
        message = parser.parsebytes(path.read_bytes())
        assert isinstance(message, EmailMessage)  # guaranteed by policy.default
        messages.append(message)
    return messages


async def serve(host: str, port: int, mail_dir: Path) -> asyncio.Server:
    """Start the sink on the running loop; the caller closes the returned server."""
    handler = MailDirHandler(mail_dir)

    def factory() -> SMTP:
        return SMTP(handler, enable_SMTPUTF8=True, hostname="threadline-smtp-sink")

    loop = asyncio.get_running_loop()
    return await loop.create_server(factory, host=host, port=port)


async def _run(host: str, port: int, mail_dir: Path) -> None:
    server = await serve(host, port, mail_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"smtp sink on {host}:{port}, mail in {mail_dir}", flush=True)
    async with server:
        await stop.wait()


def _parse(argv: list[str] | None) -> Any:
    env = os.environ
    parser = argparse.ArgumentParser(prog="threadline-smtp-sink", description=__doc__)
    parser.add_argument("--host", default=env.get("THREADLINE_SMTP_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env.get("THREADLINE_SMTP_PORT", "1025")))
    parser.add_argument(
        "--mail-dir",
        type=Path,
        default=Path(env.get("THREADLINE_MAIL_DIR", ".threadline/mail")),
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(args.host, args.port, args.mail_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
