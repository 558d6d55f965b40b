"""The SMTP sink keeps every message as a file that tests can read back, in arrival order."""

from __future__ import annotations

import asyncio
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

from threadline.devtools.ports import free_port
from threadline.devtools.smtp_sink import read_mails, serve


def _mail(subject: str, *, to: str, bcc: str | None = None, body: str = "Hello") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Threadline <no-reply@threadline.test>"
    message["To"] = to
    if bcc:
        message["Bcc"] = bcc
    message["Subject"] = subject
    message.set_content(body)
    return message


def _send(port: int, *messages: EmailMessage) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
        for message in messages:
            smtp.send_message(message)


async def test_sink_stores_each_mail_and_reads_them_back_in_arrival_order(tmp_path: Path) -> None:
    server = await serve("127.0.0.1", 0, tmp_path)
    port = server.sockets[0].getsockname()[1]
    async with server:
        # smtplib blocks: send from a thread so the sink keeps serving on this loop.
        await asyncio.to_thread(
            _send,
            port,
            _mail("First", to="ann@client.test"),
            _mail("Rappel : 2 tâches à faire", to="zoë@client.test", body="Merci — à bientôt"),
            _mail("Third", to="bob@client.test", bcc="audit@firm.test"),
        )

    mails = read_mails(tmp_path)

    assert [mail["Subject"] for mail in mails] == ["First", "Rappel : 2 tâches à faire", "Third"]
    assert mails[1].get_content().strip() == "Merci — à bientôt"
    assert mails[2]["X-MailFrom"] == "no-reply@threadline.test"
    assert mails[2]["X-RcptTo"] == "bob@client.test, audit@firm.test"
    assert mails[2]["Bcc"] is None  # smtplib strips Bcc; only the envelope still names it
    _assert_only_finished_files(tmp_path, count=3)


def _assert_only_finished_files(mail_dir: Path, *, count: int) -> None:
    files = sorted(path.name for path in mail_dir.iterdir())
    assert len(files) == count
    assert all(name.endswith(".eml") and not name.startswith(".") for name in files)


def test_read_mails_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    assert read_mails(tmp_path / "nothing-here") == []


def test_the_sink_command_serves_until_terminated(tmp_path: Path) -> None:
    port, mail_dir = free_port(), tmp_path / "mail"
    command = [sys.executable, "-m", "threadline.devtools.smtp_sink", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--mail-dir", str(mail_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                _send(port, _mail("Reminder", to="ann@client.test"))
                break
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the sink did not start listening"
                time.sleep(0.1)
        assert [mail["Subject"] for mail in read_mails(mail_dir)] == ["Reminder"]
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        if process.stderr:
            process.stderr.close()
