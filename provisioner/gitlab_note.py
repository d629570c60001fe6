"""One merge-request note per plan, updated on each push: the only code importing ``gitlab``.

The note carries a hidden HTML comment (the *marker*, e.g. ``<!-- provisioner:plan -->``). A push
looks for a note of the token's own user that holds the marker and updates it; when there is none
it creates one. So a merge request shows one current plan however often it is pushed, and other
people's comments (even one quoting the marker) are never touched.

Talks to the GitLab REST API v4 through python-gitlab: ``GET /user`` (who am I),
``GET /projects/:id/merge_requests/:iid/notes`` (paged), then ``PUT .../notes/:note_id`` or
``POST .../notes``. The token needs the ``api`` scope (a project access token, Reporter role);
``CI_JOB_TOKEN`` cannot write notes. The token is never logged nor part of an error message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import gitlab
import gitlab.exceptions
import requests

from provisioner.errors import ProvisionerError

log = logging.getLogger(__name__)

DEFAULT_MARKER = "provisioner:plan"
# GitLab refuses notes over 1,000,000 characters; stay well below and point at the artifact.
MAX_BODY = 900_000


class NoteError(ProvisionerError):
    """The note could not be written: the message says what GitLab answered (never the token)."""


@dataclass(frozen=True, slots=True)
class NoteTarget:
    """Which merge request: the server's base URL, the project (id or path) and the MR's iid."""

    server_url: str
    project: str
    merge_request_iid: int


@dataclass(frozen=True, slots=True)
class NoteResult:
    """What happened: ``created`` or ``updated``, and the note's id."""

    action: str
    note_id: int


def marker_comment(marker: str) -> str:
    """The hidden line that identifies the note; ``--`` is not allowed inside an HTML comment."""
    if "--" in marker or ">" in marker:
        raise NoteError(f"note marker {marker!r} may not contain '--' or '>'")
    return f"<!-- {marker} -->"


def note_body(text: str, marker: str, footer: str = "") -> str:
    """The body as posted: the marker line, the text (cut to GitLab's limit), the footer."""
    head = marker_comment(marker)
    tail = f"\n\n{footer}" if footer else ""
    room = MAX_BODY - len(head) - len(tail) - 64
    if len(text) > room:
        text = text[:room] + "\n\n… (cut: the full plan is in the job's artifacts)"
    return f"{head}\n{text}{tail}"


def upsert_note(
    target: NoteTarget,
    token: str,
    body: str,
    marker: str = DEFAULT_MARKER,
    *,
    timeout: float = 30.0,
) -> NoteResult:
    """Create the merge request's marked note, or update the one the token's user wrote before.

    ``body`` is the full text as :func:`note_body` returns it; it must contain the marker.
    Raises :class:`NoteError` for any refusal or network failure.
    """
    comment = marker_comment(marker)
    if comment not in body:
        raise NoteError("the note body does not contain its marker; build it with note_body()")
    if not token:
        raise NoteError("no GitLab token: set a variable holding a token with the api scope")
    client = gitlab.Gitlab(
        target.server_url, private_token=token, timeout=timeout, retry_transient_errors=False,
        session=_NoRedirects(),
    )
    try:
        client.auth()
        me = _user_id(client.user)
        project = client.projects.get(target.project, lazy=True)
        mr = project.mergerequests.get(target.merge_request_iid, lazy=True)
        mine = None
        for note in mr.notes.list(iterator=True, sort="asc", order_by="created_at"):
            if _user_id(getattr(note, "author", None)) == me and comment in (note.body or ""):
                mine = note
                break
        if mine is None:
            created = mr.notes.create({"body": body})
            log.info("created note %s on %s!%s", created.id, target.project,
                     target.merge_request_iid)
            return NoteResult("created", int(created.id))
        if mine.body == body:
            return NoteResult("unchanged", int(mine.id))
        mine.body = body
        mine.save()
        log.info("updated note %s on %s!%s", mine.id, target.project, target.merge_request_iid)
        return NoteResult("updated", int(mine.id))
    except gitlab.exceptions.GitlabError as exc:
        where = f"{target.server_url} project {target.project} MR !{target.merge_request_iid}"
        hint = {401: " (the token is invalid or expired)",
                403: " (the token lacks the api scope or the Reporter role)",
                404: " (no such project or merge request, or the token cannot see it)"}
        code = exc.response_code or 0
        raise NoteError(f"GitLab answered {code or 'an error'} for {where}: "
                        f"{_plain(exc.error_message)}{hint.get(code, '')}") from None
    except requests.RequestException as exc:
        raise NoteError(f"cannot reach GitLab at {target.server_url}: "
                        f"{type(exc).__name__}") from None


class _NoRedirects(requests.Session):
    """A session that follows no redirect: requests drops ``Authorization`` on a redirect to
    another host, but not python-gitlab's ``PRIVATE-TOKEN`` header, so following one could hand
    the token to whoever the redirect names. GitLab's API does not redirect; a 3xx is then an
    error naming the status, and nothing is sent anywhere else."""

    def get_redirect_target(self, resp: Any) -> None:
        return None


def _plain(text: Any, limit: int = 200) -> str:
    """GitLab's error text as one short line of printable characters: it is the server's
    words, and a hostile or broken server could put terminal escapes or pages of HTML there."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in str(text)).split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


def _user_id(user: Any) -> int | None:
    if user is None:
        return None
    value = user.get("id") if isinstance(user, dict) else getattr(user, "id", None)
    return int(value) if value is not None else None
