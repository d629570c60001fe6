"""What a merge request changes, from git: the institutions to plan (DESIGN §12).

``plan --changed-since REF`` plans only what the files changed since REF can affect:

- a declaration added or modified: its institution, in its zones now and in the zones its
  version at REF named (a domain removed from it is planned empty, so its records go);
- a declaration deleted (or renamed): the institution as REF had it, every zone it named
  planned empty, its platform-zone records (DKIM keys, report authorisations) deleted;
- anything else the expansion reads (``provisioner.yaml``, ``schemas/``, the product's own
  code): everything, since any record may change.

The working tree is compared with REF (``git diff REF``, untracked declarations included), so a
local run sees uncommitted edits as the merge request will. Nothing here trusts the branch: the
old declarations are read with the same loader and schema as the new ones, and a REF that is
not a commit, or a repository git cannot read, is an error naming the fix.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from provisioner.config import ZONES_DIR, Project, build_institution
from provisioner.errors import InvalidInput, ProvisionerError
from provisioner.yamlload import parse

# Paths whose change can alter any record: the platform file (whatever --config names it),
# the schemas (defaults), the code.
EVERYTHING = ("schemas/", "provisioner/")


class ChangesError(ProvisionerError):
    """git could not say what changed."""


@dataclass(frozen=True)
class Scope:
    everything: bool
    codes: frozenset[str] = frozenset()  # institutions to plan (current or removed)
    zones: frozenset[str] = frozenset()  # their zones, with the trailing dot
    orphans: Mapping[str, str] = field(default_factory=dict)  # zone -> target, planned empty
    domains: frozenset[str] = frozenset()  # the domains they declared at the base
    reason: str = ""

    def describe(self) -> str:
        if self.everything:
            return f"the whole fleet ({self.reason})"
        return (f"{len(self.codes)} institution(s) changed since the base: "
                + (", ".join(sorted(self.codes)) or "none"))


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ChangesError(f"git could not run ({exc})") from None
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["failed"])[0]
        raise ChangesError(f"git {' '.join(args[:2])}: {first}")
    return done.stdout


def changed_paths(root: Path, ref: str) -> list[tuple[str, str, str | None]]:
    """(status letter, path, old path for renames) of every file changed since ``ref``,
    relative to the repository top, plus untracked declarations as added."""
    top = Path(_git(root, "rev-parse", "--show-toplevel").strip())
    try:
        _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except ChangesError:
        raise ChangesError(f"--changed-since {ref}: not a commit of the repository at {root} "
                           "(fix: fetch it, or clone deeper: GIT_DEPTH=0 in the pipeline)"
                           ) from None
    prefix = root.resolve().relative_to(top.resolve()).as_posix()
    prefix = "" if prefix == "." else prefix + "/"
    out: list[tuple[str, str, str | None]] = []
    fields = _git(root, "diff", "--name-status", "-z", "-M", ref, "--", ".").split("\0")
    i = 0
    while i < len(fields) and fields[i]:
        status = fields[i][0]
        if status in "RC":
            old, new = fields[i + 1], fields[i + 2]
            out.append(("R", new.removeprefix(prefix), old.removeprefix(prefix)))
            i += 3
        else:
            out.append((status, fields[i + 1].removeprefix(prefix), None))
            i += 2
    untracked = _git(root, "ls-files", "--others", "--exclude-standard", "-z", "--",
                     ZONES_DIR).split("\0")
    out += [("A", p, None) for p in untracked if p]
    return out


def _everything_changed(paths: list[tuple[str, str, str | None]], config: str) -> str | None:
    """The first changed path that can alter any record (the platform file ``config``, by its
    name in the repository's root, and :data:`EVERYTHING`), or None."""
    whole = (config, *EVERYTHING)
    for _status, path, old in paths:
        for p in (path, old or ""):
            if any(p == e or (e.endswith("/") and p.startswith(e)) for e in whole):
                return p
    return None


def declarations(config: Path, ref: str) -> list[Path] | None:
    """The declarations to load for a plan of the platform file ``config`` scoped to what
    changed since ``ref``: the changed ones that exist now; None when everything must be
    planned (and so loaded)."""
    root = config.parent
    paths = changed_paths(root, ref)
    if _everything_changed(paths, config.name) is not None:
        return None
    return [root / p for status, p, _ in paths
            if status != "D" and p.startswith(f"{ZONES_DIR}/") and p.endswith(".yaml")]


def scope(project: Project, ref: str) -> Scope:
    root = project.root
    paths = changed_paths(root, ref)
    everything = _everything_changed(paths, project.config_path.name)
    if everything is not None:
        return Scope(True, reason=f"{everything} changed")
    codes: set[str] = set()
    zones: set[str] = set()
    orphans: dict[str, str] = {}
    domains: set[str] = set()
    current = {i.code: i for i in project.institutions}
    for status, path, old in paths:
        candidates: list[tuple[str, bool]] = [(path, status == "D")]
        if old:
            candidates.append((old, True))
        for p, gone in candidates:
            if not p or not p.startswith(f"{ZONES_DIR}/") or not p.endswith(".yaml"):
                continue
            code = Path(p).stem
            codes.add(code)
            inst = current.get(code) if not gone else None
            if inst is not None:
                zones |= {d.zone + "." for d in inst.domains if d.target is not None}
            before = _at(root, ref, p, project)
            if before is None:
                continue
            domains |= {d.name for d in before.domains}
            for dom in before.domains:
                if dom.target is None:
                    continue
                zone = dom.zone + "."
                still = inst is not None and any(d.zone == dom.zone and d.target is not None
                                                 for d in inst.domains)
                if still or any(d.zone == dom.zone and d.target is not None
                                for i in project.institutions for d in i.domains):
                    zones.add(zone)  # still declared (by it or another): planned as it is
                else:
                    orphans[zone] = dom.target
            codes.add(before.code)
    return Scope(False, frozenset(codes), frozenset(zones), orphans, frozenset(domains))


def _at(root: Path, ref: str, path: str, project: Project):  # type: ignore[no-untyped-def]
    """The declaration ``path`` as it was at ``ref`` (None: it did not exist or did not
    load; a broken old version leaves nothing of its own to delete)."""
    from provisioner import schema

    try:
        text = _git(root, "show", f"{ref}:{path}")
    except ChangesError:
        return None
    try:
        doc = parse(text, f"{path}@{ref[:12]}")
    except InvalidInput:
        return None
    if schema.check("institution", doc):
        return None
    problems: list = []  # type: ignore[type-arg]
    return build_institution(doc, Path(path).stem, project.platform, problems)
