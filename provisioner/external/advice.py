"""What an external domain's administrator must do, computed against the live zone (pure).

For each record the declaration expands to, the live zone decides the action:

- **add** it (nothing there), **keep** it (already right), **replace** what is there with the
  one value given (SPF merged with the customer's senders; DMARC merged, never weaker), or
  **remove** a record that cannot stay beside it (a TXT where a CNAME must stand alone);
- every conflict comes with the choice made and why, as a :class:`Note`.

SPF goes through the product's own merge (:mod:`provisioner.octodns.spfmerge`): the customer's
mechanisms stay as written, ours go before their ``all``, several SPF records become one (two
are a permerror for every receiver, RFC 7208 §4.5). DMARC: the stronger policy of theirs and
ours, their report addresses kept beside ours; a DMARC record is one per name, so the value is
given to *replace* theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from provisioner.external.hosts import GENERIC, Host
from provisioner.external.i18n import N_
from provisioner.external.live import LiveName, LiveZone
from provisioner.model import MxValue, Record, Role
from provisioner.octodns.spfmerge import LiveSpfError, is_spf, live_spf, merge
from provisioner.verify.dmarc import is_dmarc, parse_dmarc


class Action(StrEnum):
    ADD = "add"
    KEEP = "keep"
    REPLACE = "replace"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class Note:
    """A sentence for the administrator: a message id and its fields; ``warning`` when
    something is wrong or at risk, not only explained."""

    message: str
    fields: tuple[tuple[str, Any], ...] = ()
    warning: bool = False

    def text(self, t: Callable[..., str], esc: Callable[[str], str] = str) -> str:
        """Translated, with each field (a name or value, from files or live DNS) passed
        through ``esc``, the format's escaping; the message itself is the product's."""
        return t(self.message).format(**{k: v if isinstance(v, int) else esc(str(v))
                                         for k, v in self.fields})


def note(message: str, warning: bool = False, **fields: Any) -> Note:
    return Note(message, tuple(sorted(fields.items())), warning)


@dataclass(frozen=True, slots=True)
class Step:
    host: str  # relative to the zone, "@" at the apex
    fqdn: str  # with the trailing dot
    type: str
    ttl: int
    value: str  # what to publish (MX: the exchange) or, for remove, what to delete
    action: Action
    role: Role
    priority: int | None = None  # MX
    current: tuple[str, ...] = ()  # what the name holds now that this step concerns
    notes: tuple[Note, ...] = ()
    status: str = ""  # from the verifier: done, to do, wrong, unknown ("" not checked)
    found: tuple[str, ...] = ()  # what the verifier found, when not done

    @property
    def display_value(self) -> str:
        return f"{self.priority} {self.value}" if self.priority is not None else self.value


@dataclass(frozen=True)
class OneClick:
    """Domain Connect for one domain: the signed link when the host supports the template and
    the simulated apply comes out right, the groups it applies, and why others are left out."""

    host_name: str | None
    url: str | None
    groups: tuple[str, ...] = ()
    left_out: tuple[tuple[str, str], ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class DomainAdvice:
    domain: str
    zone: str
    managed: bool
    host: Host = GENERIC
    steps: tuple[Step, ...] = ()
    notes: tuple[Note, ...] = ()
    live_problem: str | None = None
    ns: tuple[str, ...] = ()
    spf_lookups: dict[str, int] = field(default_factory=dict)
    one_click: OneClick | None = None

    @property
    def to_do(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.action is not Action.KEEP)


# (fqdn, merged SPF value) -> (lookups, result, reason) of the SPF evaluator on live DNS.
SpfProbe = Callable[[str, str], "tuple[int, str, str] | None"]

_STRENGTH = {"none": 0, "quarantine": 1, "reject": 2}


def _host(record: Record) -> str:
    return record.name or "@"


def _remove(record: Record, rtype: str, current: tuple[str, ...], message: str,
            **fields: Any) -> Step:
    """A record that cannot stay beside ``record`` (a warning: it is removed)."""
    return Step(host=_host(record), fqdn=record.fqdn, type=rtype, ttl=record.ttl,
                value=" | ".join(current), action=Action.REMOVE, role=record.role,
                current=current,
                notes=(note(message, True, name=record.fqdn.rstrip("."), **fields),))


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.split()).lower() == " ".join(b.split()).lower()


def advise(domain: str, zone: str, records: list[Record], live: LiveZone | None, host: Host,
           platform_include: str, spf_probe: SpfProbe | None = None) -> DomainAdvice:
    """The steps for one external domain: ``records`` its expansion, ``live`` its zone now
    (None: not read, so every record is to add, with a note to check first)."""
    steps: list[Step] = []
    notes: list[Note] = []
    lookups: dict[str, int] = {}
    if live is None:
        notes.append(note(N_("The current records were not read: before adding each record, "
                             "check that the name holds no other record of the same kind (a "
                             "second SPF or DMARC record breaks both).")))
    elif live.problem:
        notes.append(note(N_("The current records could not be read ({why}): before adding "
                             "each record, check that the name holds no other record of the "
                             "same kind (a second SPF or DMARC record breaks both)."),
                          True, why=live.problem))
    for record in records:
        here = live.at(record.fqdn) if live is not None and not live.problem else None
        if record.role in (Role.SPF, Role.RETURN_PATH_SPF):
            made = _spf(record, here, platform_include, spf_probe, lookups)
        elif record.role is Role.DKIM:
            made = _dkim(record, here)
        elif record.role is Role.DMARC:
            made = _dmarc(record, here)
        elif record.role is Role.RETURN_PATH_MX:
            made = _mx(record, here)
        else:
            continue
        steps.extend(made)
    return DomainAdvice(domain, zone, False, host, tuple(steps), tuple(notes),
                        live.problem if live else "not asked", live.ns if live else (), lookups)


def _spf(record: Record, here: LiveName | None, platform_include: str,
         probe: SpfProbe | None, lookups: dict[str, int]) -> list[Step]:
    ours = str(record.values[0])
    base: dict[str, Any] = dict(host=_host(record), fqdn=record.fqdn, type="TXT", ttl=record.ttl,
                role=record.role)
    notes: list[Note] = []
    out: list[Step] = []
    if here is None or not here.answered:
        return [Step(value=ours, action=Action.ADD, notes=(note(N_(
            "If {name} already has a TXT record starting with v=spf1, do not add a second one: "
            "add {include} to it, before its ~all or -all."),
            name=record.fqdn.rstrip("."), include=f"include:{platform_include}"),), **base)]
    if here.cname and record.name:
        out.append(_remove(record, "CNAME", (here.cname,), N_(
            "{name} is a CNAME to {target}: a TXT record cannot stand beside it (RFC 1034 "
            "§3.6.2). Remove the CNAME, then add the TXT record."), target=here.cname))
    found = tuple(v for v in here.txt if is_spf(v))
    if not found:
        value, action = ours, Action.ADD
    else:
        try:
            current = live_spf(found, ours)
            merged = merge(current.value, ours, owned=[f"include:{platform_include}"])
        except LiveSpfError as exc:
            value, action = ours, Action.REPLACE
            notes.append(note(N_("The current SPF record cannot be kept as it is ({why}). "
                                 "Replace it with this value, then add back the mechanisms of "
                                 "your other senders, if any."), True, why=str(exc)))
        else:
            value = merged.value or ours
            action = Action.KEEP if len(found) == 1 and _same_text(value, found[0]) \
                else Action.REPLACE
            if len(found) > 1:
                notes.append(note(N_("{name} has {count} SPF records: receivers reject them "
                                     "all (permerror, RFC 7208 §4.5). Replace them with this "
                                     "one record."), True, name=record.fqdn.rstrip("."),
                                  count=len(found)))
            elif action is Action.REPLACE:
                notes.append(note(N_("Edit the existing SPF record: replace its value with "
                                     "this one. Never add a second SPF record at a name.")))
            if merged.undeclared:
                notes.append(note(N_("Your other senders stay authorised: {terms}."),
                                  terms=" ".join(merged.undeclared)))
            for said in merged.notes:
                notes.append(note(N_("{detail}"), True, detail=said))
    if probe is not None:
        probed = probe(record.fqdn, value)
        if probed is not None:
            count, result, reason = probed
            lookups[record.fqdn] = count
            if count > 10 or (result == "permerror" and "lookup" in reason.lower()):
                notes.append(note(N_(
                    "With the platform's include, this SPF value needs more than 10 DNS "
                    "lookups ({reason}): receivers would reject it (permerror, RFC 7208 "
                    "§4.6.4). Remove an include you no longer use, or send the platform's mail "
                    "from a return-path subdomain with an SPF record of its own."),
                    True, reason=reason))
            elif count >= 9:
                notes.append(note(N_("This SPF value uses {count} of the 10 DNS lookups "
                                     "receivers allow: there is little room for another "
                                     "include."), count=count))
    out.append(Step(value=value, action=action, current=found, notes=tuple(notes), **base))
    return out


def _dkim(record: Record, here: LiveName | None) -> list[Step]:
    target = str(record.values[0])
    base: dict[str, Any] = dict(host=_host(record), fqdn=record.fqdn, type="CNAME", ttl=record.ttl,
                role=record.role)
    if here is None or not here.answered:
        return [Step(value=target, action=Action.ADD, **base)]
    out: list[Step] = []
    if here.txt:
        out.append(_remove(record, "TXT", here.txt, N_(
            "{name} holds a TXT record (a key published by hand?): remove it, the CNAME must "
            "stand alone and the platform publishes the key behind it.")))
    if here.cname is None:
        out.append(Step(value=target, action=Action.ADD, **base))
    elif here.cname.rstrip(".") == target.rstrip(".").lower():
        out.append(Step(value=target, action=Action.KEEP, current=(here.cname,), **base))
    else:
        out.append(Step(value=target, action=Action.REPLACE, current=(here.cname,), notes=(
            note(N_("{name} points to {current} now: change it to the platform's target. The "
                    "platform signs with this selector only through its own key."),
                 True, name=record.fqdn.rstrip("."), current=here.cname),), **base))
    return out


def _dmarc(record: Record, here: LiveName | None) -> list[Step]:
    ours = str(record.values[0])
    base: dict[str, Any] = dict(host=_host(record), fqdn=record.fqdn, type="TXT", ttl=record.ttl,
                role=record.role)
    if here is None or not here.answered:
        return [Step(value=ours, action=Action.ADD, notes=(note(N_(
            "If {name} already has a DMARC record, replace it with this value rather than "
            "adding a second one; keep its policy if it is stricter."),
            name=record.fqdn.rstrip(".")),), **base)]
    notes: list[Note] = []
    out: list[Step] = []
    if here.cname:
        out.append(_remove(record, "CNAME", (here.cname,), N_(
            "{name} is delegated by a CNAME to {target} (a DMARC service?). Either ask that "
            "service to add the platform's report address, or replace the CNAME with this TXT "
            "record."), target=here.cname))
    found = tuple(v for v in here.txt if is_dmarc(v))
    if not found:
        out.append(Step(value=ours, action=Action.ADD, notes=tuple(notes), **base))
        return out
    value, merged_notes = merge_dmarc(found, ours)
    notes.extend(merged_notes)
    if len(found) > 1:
        notes.append(note(N_("{name} has {count} DMARC records: receivers ignore them all. "
                             "Replace them with this one record."), True,
                          name=record.fqdn.rstrip("."), count=len(found)))
    if len(found) == 1 and _same_text(value, found[0]):
        action = Action.KEEP
    else:
        action = Action.REPLACE
        if len(found) == 1:
            notes.append(note(N_("Replace the existing DMARC record's value with this one: a "
                                 "name holds one DMARC record.")))
    out.append(Step(value=value, action=action, current=found, notes=tuple(notes), **base))
    return out


def merge_dmarc(found: tuple[str, ...], ours: str) -> tuple[str, list[Note]]:
    """One DMARC value from the live ones and ours: the stronger of each policy, the stricter
    alignment, every report address of both (theirs first), and their other tags kept."""
    notes: list[Note] = []
    mine = dict(parse_dmarc(ours))
    theirs: dict[str, str] = {}
    lists: dict[str, list[str]] = {"rua": [], "ruf": []}
    for text in found:
        try:
            tags = parse_dmarc(text)
        except ValueError as exc:
            notes.append(note(N_("The current DMARC record is not valid ({why}): receivers "
                                 "ignore it. This value replaces it."), True, why=str(exc)))
            continue
        for k, v in tags.items():
            if k in lists:  # every record's report addresses, not only the first's
                lists[k] += [u.strip() for u in v.split(",") if u.strip()]
            else:
                theirs.setdefault(k, v)
    for k, uris in lists.items():
        if uris:
            theirs[k] = ",".join(uris)
    if not theirs:
        return ours, notes

    def effective(tags: Mapping[str, str], tag: str) -> str:
        """A policy as receivers apply it: sp= defaults to p=, np= to sp= (RFC 9989)."""
        chain = {"p": ("p",), "sp": ("sp", "p"), "np": ("np", "sp", "p")}[tag]
        return next((tags[t].lower() for t in chain if tags.get(t)), "none")

    out: dict[str, str] = {"v": "DMARC1"}
    for tag in ("p", "sp", "np"):
        if tag != "p" and not theirs.get(tag) and not mine.get(tag):
            continue  # neither says: both inherit the same way
        a, b = effective(theirs, tag), effective(mine, tag)
        stronger = a if _STRENGTH.get(a, 0) >= _STRENGTH.get(b, 0) else b
        out[tag] = stronger
        if _STRENGTH.get(a, 0) > _STRENGTH.get(b, 0) and (theirs.get(tag) or tag == "p"):
            notes.append(note(N_("Your policy {tag}={value} is kept: it is stronger than "
                                 "the declared {tag}={declared}."),
                              tag=tag, value=a, declared=b))
    for tag in ("adkim", "aspf"):
        a2, b2 = theirs.get(tag), mine.get(tag)
        if a2 or b2:
            out[tag] = "s" if "s" in ((a2 or "").lower(), (b2 or "").lower()) else "r"
    # t=y (testing) only when both say so: the default is t=n (RFC 9989), never weaker
    if mine.get("t", "n").lower() == "y" and theirs.get("t", "n").lower() == "y":
        out["t"] = "y"
    if "fo" in theirs or "fo" in mine:
        out["fo"] = theirs.get("fo") or mine.get("fo", "")
    for tag in ("rua", "ruf"):
        merged: list[str] = []
        for source in (theirs.get(tag, ""), mine.get(tag, "")):
            for uri in source.split(","):
                uri = uri.strip()
                if uri and uri.lower() not in (u.lower() for u in merged):
                    merged.append(uri)
        if merged:
            out[tag] = ",".join(merged)
    for tag, value in theirs.items():
        if tag not in out and tag not in ("pct", "rf", "ri", "t"):  # obsolete (RFC 9989)
            out[tag] = value
    if theirs.get("rua") and mine.get("rua"):
        notes.append(note(N_("Your report address stays: {rua}; the platform's is added "
                             "beside it."), rua=theirs["rua"]))
    return "; ".join(f"{k}={v}" for k, v in out.items()), notes


def _mx(record: Record, here: LiveName | None) -> list[Step]:
    value = record.values[0]
    assert isinstance(value, MxValue)
    base: dict[str, Any] = dict(host=_host(record), fqdn=record.fqdn, type="MX", ttl=record.ttl,
                role=record.role, priority=value.preference)
    exchange = value.exchange
    if here is None or not here.answered:
        return [Step(value=exchange, action=Action.ADD, **base)]
    current = tuple(f"{p} {e}" for p, e in here.mx)
    notes: list[Note] = []
    if here.cname:
        notes.append(note(N_("{name} is a CNAME to {target}: remove it, an MX and a TXT record "
                             "cannot stand beside a CNAME."), True,
                          name=record.fqdn.rstrip("."), target=here.cname))
    ours = (value.preference, exchange.rstrip(".").lower())
    live = [(p, e.rstrip(".")) for p, e in here.mx]
    if live == [ours]:
        return [Step(value=exchange, action=Action.KEEP, current=current, **base)]
    if live:
        notes.append(note(N_(
            "{name} already receives mail through {current}: the return path needs a name of "
            "its own. If that mail is still used, choose another return_path name for the "
            "platform; otherwise replace these MX records with this one."),
            True, name=record.fqdn.rstrip("."), current=", ".join(current)))
        return [Step(value=exchange, action=Action.REPLACE, current=current,
                     notes=tuple(notes), **base)]
    return [Step(value=exchange, action=Action.ADD, notes=tuple(notes), **base)]
