"""`provisioner mr-note --file plan.md`: post a file as the merge request's one plan note.

Meant for the pipeline's ``plan`` job (docs/pipeline.md). Where to post comes from GitLab's
predefined variables (``CI_SERVER_URL``, ``CI_PROJECT_ID``, ``CI_MERGE_REQUEST_IID``), each
overridable by an option; the token only ever from an environment variable (default
``MR_NOTE_TOKEN``), never an option, so it shows in no process list or job log.
Exit 0 when the note was created, updated or already current; 1 otherwise, with one line saying
why on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from provisioner.cli.common import EXIT_ERROR, EXIT_OK


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "mr-note",
        parents=[common],
        help="post a file (the plan) as the merge request's note, updated on each push",
        description="Create or update the one merge-request note that carries the marker.",
    )
    p.add_argument("--file", required=True, metavar="FILE", help="the note's text (markdown)")
    p.add_argument("--marker", default=None, metavar="TEXT",
                   help="hidden marker identifying the note (default: provisioner:plan)")
    p.add_argument("--server-url", default=None, metavar="URL",
                   help="GitLab's base URL (default: $CI_SERVER_URL)")
    p.add_argument("--project", default=None, metavar="ID",
                   help="project id or path (default: $CI_PROJECT_ID)")
    p.add_argument("--merge-request", default=None, metavar="IID",
                   help="merge request iid (default: $CI_MERGE_REQUEST_IID)")
    p.add_argument("--token-variable", default="MR_NOTE_TOKEN", metavar="NAME",
                   help="environment variable holding the token (api scope; default: "
                        "MR_NOTE_TOKEN)")
    p.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"provisioner: mr-note: {message}", file=sys.stderr)
    return EXIT_ERROR


def run(args: argparse.Namespace) -> int:
    # Imported here: python-gitlab is only needed by this command.
    from provisioner.gitlab_note import DEFAULT_MARKER, NoteTarget, note_body, upsert_note

    server = args.server_url or os.environ.get("CI_SERVER_URL", "")
    project = args.project or os.environ.get("CI_PROJECT_ID", "")
    iid_text = args.merge_request or os.environ.get("CI_MERGE_REQUEST_IID", "")
    missing = [name for name, value in (("--server-url or CI_SERVER_URL", server),
                                        ("--project or CI_PROJECT_ID", project),
                                        ("--merge-request or CI_MERGE_REQUEST_IID", iid_text))
               if not value]
    if missing:
        return _fail(f"not in a merge request pipeline: set {', '.join(missing)}")
    try:
        iid = int(iid_text)
    except ValueError:
        return _fail(f"merge request iid {iid_text!r} is not a number")
    token = os.environ.get(args.token_variable, "")
    if not token:
        return _fail(f"environment variable {args.token_variable} is empty or not set "
                     "(a token with the api scope; see docs/pipeline.md)")
    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return _fail(f"cannot read {args.file}: {exc}")
    job_url = os.environ.get("CI_JOB_URL")
    footer = f"<sub>Posted by [{os.environ.get('CI_JOB_NAME', 'job')}]({job_url}) " \
             f"for {os.environ.get('CI_COMMIT_SHORT_SHA', 'this push')}.</sub>" if job_url else ""
    marker = args.marker or DEFAULT_MARKER
    body = note_body(text, marker, footer)
    result = upsert_note(NoteTarget(server, project, iid), token, body, marker)
    print(f"merge request !{iid}: note {result.note_id} {result.action}", file=sys.stderr)
    return EXIT_OK
