"""One merge request per institution for the ramp's next rung, opened or updated, never
duplicated: the branch ``dmarc-ramp/<code>`` holds the declaration change, and the open merge
request from that branch is updated when there is one. It never pushes DNS: the merge request
goes through the pipeline's plan and review like any other change.

Through python-gitlab, with the same session as the merge-request notes (no redirect is
followed: requests would carry the ``PRIVATE-TOKEN`` header to wherever it points). The token
comes from an environment variable and is in no message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gitlab
import gitlab.exceptions
import requests

from provisioner.errors import ProvisionerError
from provisioner.gitlab_note import _NoRedirects, _plain

BRANCH_PREFIX = "dmarc-ramp/"
LABEL = "dmarc-ramp"


class MergeRequestError(ProvisionerError):
    """GitLab refused or could not be reached: what it answered, never the token."""


@dataclass(frozen=True, slots=True)
class Outcome:
    action: str  # "created" | "updated" | "unchanged"
    iid: int
    url: str
    branch: str


def upsert(server_url: str, project_id: str, token: str, code: str, path: str,
           content: str, title: str, description: str, target_branch: str,
           timeout: float = 30.0) -> Outcome:
    if not token:
        raise MergeRequestError("no GitLab token: set a variable holding a token with the "
                                "api scope (Developer role)")
    session = _NoRedirects()
    client = gitlab.Gitlab(server_url, private_token=token, timeout=timeout,
                           retry_transient_errors=False, session=session)
    branch = BRANCH_PREFIX + code
    try:
        project = client.projects.get(project_id, lazy=True)
        try:
            project.branches.get(branch)
            current = project.files.get(file_path=path, ref=branch).decode().decode("utf-8")
        except gitlab.exceptions.GitlabGetError as exc:
            if exc.response_code != 404:
                raise
            project.branches.create({"branch": branch, "ref": target_branch})
            current = None
        changed = current != content
        if changed:
            project.commits.create({
                "branch": branch, "commit_message": title,
                "actions": [{"action": "update", "file_path": path, "content": content}]})
        opened = project.mergerequests.list(state="opened", source_branch=branch,
                                            get_all=False, per_page=20)
        if opened:
            mr: Any = opened[0]
            if changed or mr.title != title or mr.description != description:
                mr.title = title
                mr.description = description
                mr.save()
                action = "updated"
            else:
                action = "unchanged"
        else:
            mr = project.mergerequests.create({
                "source_branch": branch, "target_branch": target_branch, "title": title,
                "description": description, "labels": LABEL,
                "remove_source_branch": True})
            action = "created"
        return Outcome(action, int(mr.iid), str(getattr(mr, "web_url", "")), branch)
    except gitlab.exceptions.GitlabError as exc:
        code_ = getattr(exc, "response_code", None)
        hint = {401: " (the token is invalid or expired)",
                403: " (the token lacks the api scope or the Developer role)",
                404: " (no such project, or the token cannot see it)"}.get(code_ or 0, "")
        raise MergeRequestError(f"{server_url} project {project_id}: GitLab answered "
                                f"{code_ or '?'}: {_plain(exc.error_message)}{hint}") from None
    except requests.RequestException as exc:
        raise MergeRequestError(f"cannot reach GitLab at {server_url}: "
                                f"{type(exc).__name__}") from None
