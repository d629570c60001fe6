"""Targets: octoDNS providers built from ``provisioner.yaml``'s ``targets`` (docs/targets.md).

A target is an octoDNS provider class and its keyword arguments, exactly as in an octoDNS
config, with two conveniences that octoDNS's Manager has too:

- a string value ``env/NAME`` is the environment variable ``NAME`` (secrets never live in files);
- relative ``directory`` options resolve against the project root, not the working directory.

Credentials for Route53 come from boto3's normal chain (environment, profile, instance role);
its endpoint from ``AWS_ENDPOINT_URL_ROUTE_53`` when set (boto3 reads it; the tests use moto).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from provisioner.errors import InvalidInput, Problem
from provisioner.model import Target

log = logging.getLogger(__name__)

YAML_PROVIDER = "octodns.provider.yaml.YamlProvider"
PATH_OPTIONS = frozenset({"directory"})
#: Options the product reads itself (:mod:`.afterapply`: where the records answer on DNS);
#: octoDNS providers reject keyword arguments they do not know, so these never reach them.
PRODUCT_OPTIONS = frozenset({"nameserver", "verify", "read_only", "requests_per_second"})

# Defaults per provider class, each overridden by the target's own options:
# - octoDNS's YamlProvider flips escaped_semicolons' default in 2.0. The product writes plain ';'
#   (what a resolver returns and what 2.0 will do) rather than depend on either default.
# - The product never manages root NS records, so octoDNS's warning about their absence is noise.
# - octodns-powerdns probes the server's config for LUA records on first use; the product writes
#   none, so the probe (an extra request and a warning) is skipped.
DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    YAML_PROVIDER: {"escaped_semicolons": False, "enforce_order": False,
                    "root_ns_warnings": False},
    "octodns_powerdns.PowerDnsProvider": {"enable_dynamic": False, "root_ns_warnings": False},
    # Route53 allows 5 requests a second per account and answers "Throttling" beyond: ten
    # attempts, in botocore's adaptive mode (client-side rate limiting, set below).
    # Zones looked up by name (ListHostedZonesByName, one request each) rather than by listing
    # every hosted zone of the account (one request per 100 zones, 100 at 10,000); a run that
    # reads 100 zones or more lists them instead (ratelimit.prefetch).
    "octodns_route53.Route53Provider": {"root_ns_warnings": False, "client_max_attempts": 10,
                                        "get_zones_by_name": True},
}
#: Environment botocore reads for every client a provider makes, unless the operator set it.
BOTOCORE_DEFAULTS: Mapping[str, Mapping[str, str]] = {
    "octodns_route53.Route53Provider": {"AWS_RETRY_MODE": "adaptive"},
}


def _fail(target: Target, code: str, message: str, hint: str = "") -> InvalidInput:
    return InvalidInput([Problem(code, f"target {target.name}: {message}", target.origin, hint)])


def provider_kwargs(target: Target, root: Path) -> dict[str, Any]:
    """The keyword arguments for the provider; raises InvalidInput naming the target.

    :data:`PRODUCT_OPTIONS` are left out: they are the product's, not the provider's.
    """
    kwargs: dict[str, Any] = {}
    kwargs.update(DEFAULTS.get(target.provider_class, {}))
    for key, value in target.options.items():
        if key in PRODUCT_OPTIONS:
            continue
        if isinstance(value, str) and value.startswith("env/"):
            name = value[4:]
            if name not in os.environ:
                raise _fail(
                    target, "target.secret-missing",
                    f"option {key} reads environment variable {name}, which is not set",
                    f"export {name}=...",
                )
            value = os.environ[name]
        elif key in PATH_OPTIONS and isinstance(value, str) and not Path(value).is_absolute():
            value = str((root / value).resolve())
        kwargs[key] = value
    return kwargs


#: Environment variable naming more provider classes or packages (comma-separated) that may be
#: loaded: a CI/CD variable, protected, never a file a merge request can change.
ALLOW_ENV = "PROVISIONER_ALLOW_PROVIDERS"
_PACKAGE = re.compile(r"^octodns(_[a-z0-9_]+)?$")


def allowed_class(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``name`` may be loaded at all (DESIGN §13: nothing in provisioner.yaml is code).

    Allowed: classes of octoDNS's own packages (``octodns``, ``octodns_<name>``), and those
    named, by class or by top-level package, in :data:`ALLOW_ENV`. Checked without importing,
    so ``validate`` can say it before anything runs.
    """
    env = os.environ if environ is None else environ
    package = name.split(".", 1)[0]
    extra = {p.strip() for p in env.get(ALLOW_ENV, "").split(",") if p.strip()}
    return bool(_PACKAGE.match(package)) or name in extra or package in extra


def _installed_dirs() -> list[Path]:
    """Where installed packages live: the interpreter's library and site-packages."""
    import site
    import sysconfig

    paths = sysconfig.get_paths()
    found = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    found.update(site.getsitepackages())
    return [Path(p).resolve() for p in found if p]


def missing_class(name: str, root: Path | None = None) -> str | None:
    """Why the class ``name`` (``package.module.Class``) cannot be loaded, or None when an
    installed module defines or imports it: for ``validate``, which must not import the
    providers (a third of a second, and their code). The module's source is read, not run."""
    import ast
    import difflib

    module_name, _, class_name = name.rpartition(".")
    parts = module_name.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return f"no installed package {parts[0]!r} (pip install {parts[0].replace('_', '-')})"
    path: Path | None = Path(spec.origin) if spec.origin and os.path.isabs(spec.origin) else None
    if root is not None and path is not None and path.resolve().is_relative_to(root.resolve()) \
            and not any(path.resolve().is_relative_to(d) for d in _installed_dirs()):
        return f"it would be loaded from the repository ({path}), not from an installed package"
    for part in parts[1:]:
        if path is None or path.name != "__init__.py":
            return f"{module_name!r} is not a module of an installed package"
        package = path.parent
        path = package / part / "__init__.py" if (package / part).is_dir() \
            else package / f"{part}.py"
        if not path.is_file():
            return f"no module {module_name!r} in the installed {parts[0]!r}"
    if path is None or path.suffix != ".py":
        return None  # compiled or built in: leave it to the plan
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    # The common case, cheaply: the module names the class (defines or imports it). Parsing
    # it, a few ms per provider at every validate, is for the rare case it does not.
    if re.search(rf"^(class {re.escape(class_name)}\b|.*\bimport\b.*\b{re.escape(class_name)}\b)",
                 source, re.MULTILINE):
        return None
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if any(a.name == "*" for a in node.names):
                return None
            names.update(a.asname or a.name.rpartition(".")[2] for a in node.names)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    if class_name in names:
        return None
    close = difflib.get_close_matches(class_name, sorted(names), n=1)
    return f"{module_name} has no {class_name!r}" + (f" (did you mean {close[0]!r}?)"
                                                      if close else "")


def provider_class(target: Target, root: Path | None = None, base: Any = None) -> Any:
    """The provider class of ``target``: an allowed name (:func:`allowed_class`), from an
    installed package (never a module of the repository), and a subclass of octoDNS's provider
    base (or of ``base``: a source, for a read-only plan). Anything else is refused before it
    is called."""
    name = target.provider_class
    module_name, _, class_name = name.rpartition(".")
    if not allowed_class(name):
        raise _fail(
            target, "target.class-refused",
            f"{name!r} is not an octoDNS provider package's class: provisioner.yaml names "
            "providers, never code",
            f"use octodns.* or octodns_<provider>.*; another package must be allowed by the "
            f"protected CI/CD variable {ALLOW_ENV}")
    try:
        spec = importlib.util.find_spec(module_name.split(".", 1)[0])
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise _fail(target, "target.class-unknown", f"no installed package provides {name!r}",
                    "install the provider's package (e.g. pip install octodns-powerdns)")
    # "frozen" and "built-in" modules are the interpreter's own; files must come from the
    # interpreter's library or site-packages directories (a virtualenv inside the checkout
    # included), never from elsewhere in the repository, where a merge request can add them.
    origin = Path(spec.origin).resolve() if spec.origin and os.path.isabs(spec.origin) else None
    if root is not None and origin is not None and origin.is_relative_to(root.resolve()) \
            and not any(origin.is_relative_to(d) for d in _installed_dirs()):
        raise _fail(target, "target.class-refused",
                    f"{name!r} would be loaded from the repository ({origin}), not from an "
                    "installed package", "install the provider's package")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise _fail(
            target, "target.class-unknown",
            f"cannot load octoDNS provider {name!r} ({exc})",
            "install the provider's package (e.g. pip install octodns-powerdns)",
        ) from None
    if base is None:
        from octodns.provider.base import BaseProvider  # type: ignore[import-untyped,unused-ignore]

        base = BaseProvider

    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise _fail(target, "target.class-refused",
                    f"{name!r} is not an octoDNS {base.__name__.removeprefix('Base').lower()} "
                    f"(a subclass of {base.__module__}.{base.__name__})", "name a provider class")
    return cls


def _fast_loader() -> Any:
    """octoDNS's ContextLoader (mappings carry their file, line and column for its error
    messages) on libyaml's C parser; ``!include`` is not needed in zone files we write."""
    from octodns.context import ContextDict  # type: ignore[import-untyped,unused-ignore]
    from yaml.constructor import SafeConstructor
    from yaml.resolver import BaseResolver

    class FastContextLoader(yaml.CSafeLoader):  # type: ignore[misc,name-defined,unused-ignore]
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            mark = node.start_mark
            return ContextDict(SafeConstructor.construct_mapping(self, node, deep),
                               context=f"{mark.name}, line {mark.line + 1}, "
                                       f"column {mark.column + 1}")

        def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
            # A plain scalar's tag without YAML 1.1's dozen regular expressions (a tenth of
            # a second per 10,000 values): zone files hold strings, integers, booleans, null.
            if kind is yaml.ScalarNode and implicit[0]:
                if value.isdigit():
                    return "tag:yaml.org,2002:int"
                if value.lower() in ("true", "false"):
                    return "tag:yaml.org,2002:bool"
                if value in ("", "~", "null", "Null", "NULL"):
                    return "tag:yaml.org,2002:null"
                if not value[:1].isalpha() or value.lower() in ("yes", "no", "on", "off"):
                    return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
                return "tag:yaml.org,2002:str"
            return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]

    FastContextLoader.add_constructor(BaseResolver.DEFAULT_MAPPING_TAG,
                                      FastContextLoader.construct_mapping)
    return FastContextLoader


def _atomic_yaml_provider() -> Any:
    """octoDNS's YamlProvider, writing each zone file whole or not at all: it writes in place
    (``open(name, 'w')``), so a kill mid-write would leave a truncated zone. Here the files go
    to a temporary directory beside them, are fsynced, and replace the old ones by rename."""
    from octodns.provider.yaml import YamlProvider  # type: ignore[import-untyped,unused-ignore]
    from octodns.record import Record  # type: ignore[import-untyped,unused-ignore]

    loader = _fast_loader()

    class AtomicYamlProvider(YamlProvider):  # type: ignore[misc]
        def _populate_from_file(self, filename: str, zone: Any, lenient: bool) -> None:
            """YamlProvider's reading with libyaml's C parser: its own pure-Python loader took
            2.3 of the 2.9 s of a 1,000-institution plan (measured). The same records: the
            loop below is octoDNS 1.22's, with its semicolon escaping and default TTL."""
            if self.enforce_order:  # the sorting loaders exist in Python only
                super()._populate_from_file(filename, zone, lenient)
                return
            with open(filename) as fh:
                yaml_data = yaml.load(fh, loader)
            for name, data in (yaml_data or {}).items():
                for d in data if isinstance(data, list) else [data]:
                    if not self.escaped_semicolons and d.get("type") in ("SPF", "TXT"):
                        if d.get("value") is not None:
                            d["value"] = d["value"].replace(";", "\\;")
                        if "values" in d:
                            d["values"] = [v.replace(";", "\\;") if v is not None else v
                                           for v in d["values"]]
                    if "ttl" not in d:
                        d["ttl"] = self.default_ttl
                    record = Record.new(zone, name, d, source=self, lenient=lenient)
                    zone.add_record(record, lenient=lenient,
                                    replace=self.populate_should_replace)

        def _apply(self, plan: Any) -> Any:
            final: str = str(getattr(self, "directory"))  # noqa: B009 - untyped base
            os.makedirs(final, exist_ok=True)
            staging = tempfile.mkdtemp(dir=final, prefix=".apply-")
            setattr(self, "directory", staging)  # noqa: B010
            try:
                result = super()._apply(plan)
                for name in sorted(os.listdir(staging)):
                    path = os.path.join(staging, name)
                    if os.path.isfile(path):
                        fd = os.open(path, os.O_RDONLY)
                        try:
                            os.fsync(fd)
                        finally:
                            os.close(fd)
                        os.replace(path, os.path.join(final, name))
                    elif os.path.isdir(path):  # split files: a directory per zone
                        target_dir = os.path.join(final, name)
                        os.makedirs(target_dir, exist_ok=True)
                        for inner in os.listdir(path):
                            os.replace(os.path.join(path, inner),
                                       os.path.join(target_dir, inner))
                        os.rmdir(path)
                fd = os.open(final, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                return result
            finally:
                setattr(self, "directory", final)  # noqa: B010
                shutil.rmtree(staging, ignore_errors=True)

    return AtomicYamlProvider


POWERDNS = "octodns_powerdns.PowerDnsProvider"


def _granting_transfers(base: Any, key_name: str) -> Any:
    """PowerDNS, allowing the read-only plans' transfer key on every zone it creates (a
    platform zone): otherwise the next merge-request plan could not read the new zone."""
    from octodns_powerdns import _encode_zone_name  # type: ignore[import-untyped,unused-ignore]

    class GrantingTransfers(base):  # type: ignore[misc,valid-type,unused-ignore]
        def _apply(self, plan: Any) -> Any:
            result = base._apply(self, plan)
            if not plan.exists:
                zone = plan.desired.name
                try:
                    self._request("PUT", f"zones/{_encode_zone_name(zone)}",
                                  {"master_tsig_key_ids": [key_name.rstrip(".") + "."]})
                except Exception as exc:  # the records are written: say what is left to do
                    log.warning("%s: created, but the transfer key %s could not be allowed on "
                                "it (%s): read-only plans cannot read it until `pdnsutil "
                                "activate-tsig-key %s %s primary`", zone.rstrip("."), key_name,
                                exc, zone.rstrip("."), key_name)
            return result

    return GrantingTransfers


def build_provider(target: Target, root: Path) -> Any:
    """The provider object for ``target``; bad options are one located error, not a traceback."""
    cls = provider_class(target, root)
    if target.provider_class == YAML_PROVIDER:
        cls = _atomic_yaml_provider()
    reader = target.options.get("read_only")
    if target.provider_class == POWERDNS and isinstance(reader, Mapping) \
            and isinstance(reader.get("key_name"), str):
        key_name = provider_kwargs(Target(target.name, "", {"key_name": reader["key_name"]},
                                          target.origin), root)["key_name"]
        cls = _granting_transfers(cls, str(key_name))
    kwargs = provider_kwargs(target, root)
    # botocore reads these when the provider makes its client, in its constructor: set for
    # that moment only (never left in the environment), and only where the operator set none.
    added = {k: v for k, v in BOTOCORE_DEFAULTS.get(target.provider_class, {}).items()
             if k not in os.environ}
    os.environ.update(added)
    try:
        provider = cls(target.name, **kwargs)
        if target.provider_class == "octodns_route53.Route53Provider":
            from provisioner.octodns import ratelimit

            ratelimit.instrument(provider, target.name,
                                 target.options.get("requests_per_second"))
        return provider
    except TypeError as exc:
        raise _fail(target, "target.options", f"bad options for {target.provider_class}: {exc}"
                    ) from None
    except Exception as exc:  # providers raise anything on bad config; report it, located
        raise _fail(target, "target.init", f"{type(exc).__name__}: {exc}") from None
    finally:
        for key in added:
            os.environ.pop(key, None)
