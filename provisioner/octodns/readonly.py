"""Read-only plans: a merge request's plan never holds a credential that can write DNS.

``plan --read-only`` (what the merge-request pipeline runs; docs/security.md) builds each target
so that it can read its zones and nothing else, and refuses to plan when that cannot be shown:

- **File targets** (octoDNS's YamlProvider) hold no credential: read as usual.
- **Route53**: the role's permissions are IAM's business, so the plan asks IAM. It sends one
  ``ChangeResourceRecordSets`` that deletes a record that does not exist (a random name under
  the first zone the target holds). A read-only role is denied it (``AccessDenied``); a role
  that may write gets ``InvalidChangeBatch`` (the record is not there) and nothing changes. Any
  answer but a denial fails the plan loudly: ``plan.credentials-can-write``.
- **A target with a** ``read_only:`` **source** (PowerDNS: its API keys cannot be limited) is read
  through that octoDNS source, e.g. ``octodns_bind.AxfrSource`` with a transfer-only TSIG key;
  the provider is built for its planning rules only, with no secret, and cannot apply. If one
  of the provider's ``env/NAME`` secrets (an option named like a key, secret, token, password
  or credential) is set in the environment anyway, the job holds a write credential it should
  not: the plan fails loudly.
- **Any other target** cannot be shown to be read-only: the plan refuses it, naming the fix.

Hand-written because no library does it: octoDNS has no notion of a read-only plan.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import secrets
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from provisioner.model import Target
from provisioner.octodns.afterapply import FILE_PROVIDERS, ROUTE53
from provisioner.octodns.targets import (
    ALLOW_ENV,
    _fail,
    allowed_class,
    build_provider,
    provider_class,
    provider_kwargs,
)

log = logging.getLogger(__name__)

#: The option naming how a read-only plan reads a target (a product option, never octoDNS's).
READ_ONLY = "read_only"
#: Provider options that hold a credential (octoDNS providers' api_key, token, secret_key...).
SECRET = re.compile(r"key|secret|token|password|credential", re.IGNORECASE)
#: What a missing secret becomes in a read-only plan's provider: never a working credential.
PLACEHOLDER = "read-only-plan-holds-no-credential"


def _secret_variable(key: str, value: Any) -> str | None:
    """The variable an ``env/NAME`` option holding a credential reads, else None."""
    if isinstance(value, str) and value.startswith("env/") and SECRET.search(key):
        return value[4:]
    return None


def build_reader(target: Target, root: Path, zones: Iterable[str] = (),
                 create_zones: Iterable[str] = ()) -> Any:
    """A provider for ``target`` that can plan but holds no write credential; InvalidInput
    (located, with the fix) when that cannot be shown. ``zones``: the zones the plan reads on
    this target (the Route53 probe uses the first that exists); ``create_zones``: zones the
    product creates, which may be absent."""
    source_cfg = target.options.get(READ_ONLY)
    if source_cfg is not None:
        return _through_source(target, root, source_cfg, set(create_zones))
    if target.provider_class in FILE_PROVIDERS:
        return build_provider(target, root)
    if target.provider_class == ROUTE53:
        provider = build_provider(target, root)
        probe_route53(target, provider, zones)
        return provider
    raise _fail(target, "plan.read-only-unknown",
                f"a read-only plan cannot show that {target.provider_class}'s credentials are "
                "read-only", f"give the target a {READ_ONLY}: source that reads its zones "
                "(e.g. octodns_bind.AxfrSource with a transfer key; docs/security.md)")


# --- Route53: ask IAM ---------------------------------------------------------------------

def _error_code(exc: Any) -> str:
    response = getattr(exc, "response", None) or {}
    code = str((response.get("Error") or {}).get("Code") or "")
    if not code:  # some stand-ins (moto's IAM) put it one level down
        code = str(((response.get("Errors") or {}).get("Error") or {}).get("Code") or "")
    if not code and (response.get("ResponseMetadata") or {}).get("HTTPStatusCode") == 403:
        code = "AccessDenied"
    return code


def probe_route53(target: Target, provider: Any, zones: Iterable[str]) -> None:
    """Raise unless the provider's credentials are denied writing (see the module's text)."""
    conn = provider._conn  # octodns-route53's boto3 client
    zone_name, zone_id = "", None
    for zone in zones:
        try:
            zone_id = provider._get_zone_id(zone)
        except Exception as exc:  # listing denied or failing: the probe says it below
            log.info("route53 probe: zone id of %s: %s", zone, exc)
            zone_id = None
        if zone_id:
            zone_name = zone
            break
    if not zone_id:
        # No zone yet: a hosted zone id that cannot exist; a role that may write every zone
        # is answered NoSuchHostedZone, a read-only role AccessDenied.
        zone_name, zone_id = "probe.invalid.", "/hostedzone/Z0MAILAUTHREADONLYPROBE"
    name = f"_mailauth-write-probe-{secrets.token_hex(8)}.{zone_name}"
    try:
        conn.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
            "Comment": "mailauth-provisioner read-only probe: deletes nothing that exists",
            "Changes": [{"Action": "DELETE", "ResourceRecordSet": {
                "Name": name, "Type": "TXT", "TTL": 60,
                "ResourceRecords": [{"Value": '"read-only probe"'}]}}]})
        code = "accepted"
    except Exception as exc:
        code = _error_code(exc) or type(exc).__name__
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
        log.info("route53 probe: %s denied writing %s, as a read-only plan wants", target.name,
                 zone_name)
        return
    raise _fail(target, "plan.credentials-can-write",
                f"this read-only plan's AWS credentials were not denied writing "
                f"{zone_name.rstrip('.')} (a probe that changes nothing got {code}, not "
                "AccessDenied): a merge-request plan must hold no credential that can write DNS",
                "give the plan job the read-only role (route53:Get*, route53:List*; "
                "docs/pipeline.md), and the write role only to apply")


# --- read through a source -----------------------------------------------------------------

def _source_class(target: Target, name: str, root: Path) -> Any:
    from octodns.source.base import BaseSource  # type: ignore[import-untyped,unused-ignore]

    if not allowed_class(name):
        raise _fail(target, "target.class-refused",
                    f"{READ_ONLY}.class {name!r} is not an octoDNS package's class",
                    f"use octodns_bind.AxfrSource, or allow it in {ALLOW_ENV}")
    return provider_class(Target(target.name, name, {}, target.origin), root, base=BaseSource)


def _through_source(target: Target, root: Path, cfg: Mapping[str, Any],
                    create_zones: set[str]) -> Any:
    if not isinstance(cfg, Mapping) or not isinstance(cfg.get("class"), str):
        raise _fail(target, "target.options", f"{READ_ONLY} must be a mapping with a class",
                    f"{READ_ONLY}: {{class: octodns_bind.AxfrSource, host: ..., key_name: ...}}")
    # The provider's own secrets must be absent: a job that holds them can write, whatever it
    # reads through.
    for key, value in target.options.items():
        variable = _secret_variable(key, value)
        if variable is not None and variable in os.environ:
            raise _fail(target, "plan.credentials-can-write",
                        f"option {key}'s variable {variable} is set in this read-only plan: "
                        "the job holds a credential that can write DNS",
                        f"make {variable} a protected CI/CD variable of the apply job's "
                        "environment only (docs/security.md)")
    source_cls = _origin_lenient(_source_class(target, cfg["class"], root))
    source_target = Target(f"{target.name}-read-only", cfg["class"],
                           {k: v for k, v in cfg.items() if k != "class"}, target.origin)
    source_kwargs = provider_kwargs(source_target, root)
    secret = source_kwargs.get("key_secret")
    if secret is not None:
        try:
            base64.b64decode(str(secret), validate=True)
        except (binascii.Error, ValueError):
            raise _fail(target, "target.options", f"{READ_ONLY}.key_secret is not base64 "
                        "(a TSIG secret, as pdnsutil generate-tsig-key prints it)",
                        "set the transfer key's secret") from None
    try:
        source = source_cls(source_target.name, **source_kwargs)
    except Exception as exc:  # bad options, an unresolvable host: one located line
        raise _fail(target, "target.init", f"{READ_ONLY}: {type(exc).__name__}: {exc}",
                    f"fix the {READ_ONLY} options") from None

    base = provider_class(target, root)
    kwargs = {k: PLACEHOLDER if _secret_variable(k, v) is not None else v
              for k, v in target.options.items()}
    planning = Target(target.name, target.provider_class, kwargs, target.origin)
    provider_args = provider_kwargs(planning, root)
    reader_cls = _reader_class(base)
    try:
        provider = reader_cls(target.name, **provider_args)
    except Exception as exc:
        raise _fail(target, "target.init", f"{type(exc).__name__}: {exc}",
                    "fix the target's options") from None
    provider._read_only_source = source
    provider._read_only_create = create_zones
    return provider


def _origin_lenient(cls: Any) -> Any:
    """octodns-bind's AXFR, accepting a zone without NS records at its apex: octodns-powerdns
    creates the platform zones without any, and dnspython refuses such a transfer by default
    (``check_origin``). The transfer is octodns-bind 1.1's, with that one check off."""
    from octodns_bind import (  # type: ignore[import-untyped,unused-ignore]
        AxfrPopulate,
        AxfrSourceZoneTransferFailed,
        Rr,
    )

    if not issubclass(cls, AxfrPopulate):
        return cls

    class OriginLenient(cls):  # type: ignore[misc,valid-type,unused-ignore]
        def zone_records(self, zone: Any, target: Any) -> list[Any]:
            import dns.exception
            import dns.query
            import dns.rdatatype
            import dns.zone

            try:
                z = dns.zone.from_xfr(
                    dns.query.xfr(self.host, zone.name, port=self.port, timeout=self.timeout,
                                  lifetime=self.timeout, relativize=False,
                                  **self._auth_params()),
                    relativize=False, check_origin=False)
            except dns.exception.DNSException as err:
                raise AxfrSourceZoneTransferFailed(err) from None
            with warnings.catch_warnings():  # octodns-bind 1.1's populate takes Rr, not Rrset
                warnings.simplefilter("ignore", DeprecationWarning)
                return [Rr(name.to_text(), dns.rdatatype.to_text(rdata.rdtype), ttl,
                           rdata.to_text())
                        for name, ttl, rdata in z.iterate_rdatas()
                        if dns.rdatatype.to_text(rdata.rdtype) in self.SUPPORTS]

    return OriginLenient


def _reader_class(base: type) -> type:
    """``base`` with its reading replaced by the source's and its writing removed."""

    class ReadOnly(base):  # type: ignore[misc,valid-type,unused-ignore]
        _read_only_source: Any
        _read_only_create: set[str]

        def populate(self, zone: Any, target: bool = False, lenient: bool = False) -> bool:
            from octodns_bind import (  # type: ignore[import-untyped,unused-ignore]
                AxfrSourceZoneTransferFailed,
            )

            try:
                self._read_only_source.populate(zone, target=target, lenient=lenient)
            except AxfrSourceZoneTransferFailed as exc:
                text = str(exc.args[0] if exc.args else exc)
                name = zone.name.rstrip(".")
                if "NOTAUTH" in text and name in self._read_only_create:
                    return False  # a platform zone apply will create
                if "NOTAUTH" in text or "REFUSED" in text:
                    raise RuntimeError(
                        f"zone transfer of {name} refused ({text.rsplit(': ', 1)[-1]}): the "
                        "zone is not on this server, or the transfer key is not allowed for "
                        f"it (pdnsutil activate-tsig-key {name} KEY primary)") from None
                raise RuntimeError(f"zone transfer of {name}: {text}") from None
            return True

        def _apply(self, plan: Any) -> Any:
            raise RuntimeError("a read-only plan cannot apply")

        def __getattribute__(self, name: str) -> Any:
            if name == "list_zones":  # zones are read one by one, by name
                raise AttributeError(name)
            return super().__getattribute__(name)

    ReadOnly.__name__ = f"ReadOnly{base.__name__}"
    return ReadOnly
