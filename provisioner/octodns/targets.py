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
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from provisioner.errors import InvalidInput, Problem
from provisioner.model import Target

YAML_PROVIDER = "octodns.provider.yaml.YamlProvider"
PATH_OPTIONS = frozenset({"directory"})
#: Options the product reads itself (:mod:`.afterapply`: where the records answer on DNS);
#: octoDNS providers reject keyword arguments they do not know, so these never reach them.
PRODUCT_OPTIONS = frozenset({"nameserver", "verify"})

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
    "octodns_route53.Route53Provider": {"root_ns_warnings": False},
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


def provider_class(target: Target) -> Any:
    module_name, _, class_name = target.provider_class.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise _fail(
            target, "target.class-unknown",
            f"cannot load octoDNS provider {target.provider_class!r} ({exc})",
            "install the provider's package (e.g. pip install octodns-powerdns)",
        ) from None


def build_provider(target: Target, root: Path) -> Any:
    """The provider object for ``target``; bad options are one located error, not a traceback."""
    cls = provider_class(target)
    kwargs = provider_kwargs(target, root)
    try:
        return cls(target.name, **kwargs)
    except TypeError as exc:
        raise _fail(target, "target.options", f"bad options for {target.provider_class}: {exc}"
                    ) from None
    except Exception as exc:  # providers raise anything on bad config; report it, located
        raise _fail(target, "target.init", f"{type(exc).__name__}: {exc}") from None
