"""The DMARC ingestion test servers themselves: PostgreSQL and Dovecot answer, keep what they
are given, and are empty again for the next test."""

from __future__ import annotations

import imaplib
from email.message import EmailMessage

import psycopg
import pytest
from imapclient import IMAPClient

from tests.mailservers import (  # noqa: F401 - fixtures
    DovecotServer,
    PostgresServer,
    dovecot,
    dovecot_server,
    postgres,
    postgres_server,
)


def report_mail(subject: str = "Report domain: example.com") -> bytes:
    message = EmailMessage()
    message["From"] = "noreply-dmarc-support@google.com"
    message["To"] = "dmarc@example.com"
    message["Subject"] = subject
    message["Message-ID"] = "<1234@google.com>"
    message.set_content("DMARC aggregate report attached.\n")
    message.add_attachment(b"PK\x03\x04 not really a zip", maintype="application",
                           subtype="zip", filename="google.com!example.com!1!2.zip")
    return message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_postgres_listens_on_loopback_with_a_password(postgres: PostgresServer) -> None:  # noqa: F811
    assert postgres.url == (f"postgresql://dmarc:dmarc-test-password@127.0.0.1:{postgres.port}"
                            "/reports")
    with postgres.connect() as conn:
        row = conn.execute("SELECT current_user, current_database(), inet_server_addr()::text, "
                           "current_setting('fsync')").fetchone()
    assert row == ("dmarc", "reports", "127.0.0.1/32", "off")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(postgres.url.replace("dmarc-test-password", "wrong"), connect_timeout=5)


def test_postgres_keeps_a_table(postgres: PostgresServer) -> None:  # noqa: F811
    with postgres.connect() as conn:
        conn.execute("CREATE TABLE reports (org text, report_id text PRIMARY KEY, n int)")
        conn.execute("INSERT INTO reports VALUES (%s, %s, %s)", ("google.com", "r-1", 3))
    with psycopg.connect(postgres.url) as conn:
        assert conn.execute("SELECT org, report_id, n FROM reports").fetchall() == [
            ("google.com", "r-1", 3)]


def test_postgres_reset_empties_the_database(postgres: PostgresServer) -> None:  # noqa: F811
    with postgres.connect() as conn:
        conn.execute("CREATE TABLE leftover (x int)")
        conn.execute("INSERT INTO leftover VALUES (1)")
    idle = postgres.connect()  # a session left open by a test does not block the reset
    idle.execute("SELECT 1 FROM leftover")
    postgres.reset()
    with postgres.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                            ).fetchone() == (0,)
        conn.execute("CREATE TABLE again (x int)")  # the report user still owns the schema
    idle.close()


def test_dovecot_gives_back_the_appended_message(dovecot: DovecotServer) -> None:  # noqa: F811
    assert dovecot.url == f"imap://dmarc@127.0.0.1:{dovecot.port}/INBOX"
    mail = report_mail()
    dovecot.append("INBOX", mail)
    dovecot.append("DMARC/google", report_mail("second"))
    assert dovecot.messages("INBOX") == 1
    assert dovecot.messages("DMARC/google") == 1
    with IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=10) as client:
        client.login(dovecot.user, dovecot.password)
        client.select_folder("INBOX", readonly=True)
        (uid,) = client.search("ALL")
        fetched = client.fetch([uid], [b"BODY.PEEK[]"])[uid][b"BODY[]"]
    assert fetched == mail


def test_dovecot_refuses_a_wrong_password_or_user(dovecot: DovecotServer) -> None:  # noqa: F811
    for user, password in ((dovecot.user, "wrong"), ("someone", dovecot.password)):
        client = IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=10)
        with pytest.raises(imaplib.IMAP4.error):
            client.login(user, password)
        client.logout()


def test_dovecot_reset_empties_the_mailbox(dovecot: DovecotServer) -> None:  # noqa: F811
    dovecot.append("INBOX", report_mail())
    dovecot.append("Reports/2024/dmarc", report_mail())
    assert "Reports/2024/dmarc" in dovecot.folders()
    dovecot.reset()
    assert dovecot.folders() == ["INBOX"]
    assert dovecot.messages("INBOX") == 0
