"""The AWS Secrets Manager key store (the only module that talks to Secrets Manager).

Secrets, under the configured prefix (default ``mailauth-provisioner/``):

- ``<prefix>keys/<code>/<key id>``: one private key (PEM), created once and never updated, so
  IAM can let the apply and rotation jobs create and read keys while the merge-request job
  cannot read any;
- ``<prefix>state/<code>``: the institution's key state (JSON, no private key), which the
  merge-request plan may read.

A state write is a compare and swap: version N+1 of ``<prefix>state/<code>`` is written with
the ClientRequestToken derived from (code, N+1); Secrets Manager refuses a second, different
value under one token, so of two runs that read version N only one writes N+1.

Credentials come from boto3's chain (environment, the pipeline's OIDC web identity, a
profile); ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` points boto3 elsewhere (moto in the tests).
botocore logs request bodies at debug level: the CLI keeps botocore's loggers at INFO at any
verbosity, so a private key never reaches a log.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from dataclasses import replace
from typing import Any

from provisioner.keys.state import InstitutionKeys, StateError, from_json
from provisioner.keys.store import Conflict, StoreError, check_id

_TOKENS = uuid.UUID("6f0d1c1e-3b35-4d7e-9a53-2b8f1f6f4a10")


class SecretsManagerStore:
    def __init__(self, prefix: str, region: str | None = None, kms_key_id: str | None = None,
                 client: Any = None) -> None:
        self.prefix = prefix
        self.region = region
        self.kms_key_id = kms_key_id
        self._client = client
        self.location = f"secretsmanager {prefix}" + (f" in {region}" if region else "")
        self._arns: dict[str, str] = {}

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            # Adaptive retries: Secrets Manager throttles bursts (a fleet's first apply).
            config = Config(retries={"mode": "adaptive", "max_attempts": 10})
            self._client = boto3.client("secretsmanager", region_name=self.region,
                                        config=config)
        return self._client

    def _fail(self, what: str, exc: Exception) -> StoreError:
        code = _code(exc)
        detail = code or type(exc).__name__
        return StoreError(f"{self.location}: {what}: {detail}")

    # --- state ------------------------------------------------------------------------------

    def _state_name(self, code: str) -> str:
        check_id(code)
        return f"{self.prefix}state/{code}"

    def _parse(self, name: str, text: str) -> InstitutionKeys:
        try:
            return from_json(json.loads(text))
        except (ValueError, StateError) as exc:
            raise StoreError(f"{self.location}: {name}: {exc}") from None

    def read_states(self, codes: Collection[str] | None = None) -> dict[str, InstitutionKeys]:
        out: dict[str, InstitutionKeys] = {}
        try:
            if codes is not None and len(codes) <= 20:
                names = [self._state_name(c) for c in codes]
                if not names:
                    return out
                pages = [self.client.batch_get_secret_value(SecretIdList=names)]
            else:
                pages = self._pages(f"{self.prefix}state/")
            for page in pages:
                for secret in page.get("SecretValues", []):
                    name = secret["Name"]
                    if not name.startswith(f"{self.prefix}state/"):
                        continue  # a name filter matches prefixes of path parts too
                    state = self._parse(name, secret["SecretString"])
                    if codes is None or state.institution in codes:
                        out[state.institution] = state
                for error in page.get("Errors", []):
                    if error.get("ErrorCode") != "ResourceNotFoundException":
                        raise StoreError(f"{self.location}: {error.get('SecretId')}: "
                                         f"{error.get('ErrorCode')}")
        except StoreError:
            raise
        except Exception as exc:  # botocore's errors: credentials, network, throttling
            raise self._fail("cannot read the key states", exc) from None
        return out

    def _pages(self, prefix: str) -> Any:
        token = None
        while True:
            kwargs: dict[str, Any] = {"Filters": [{"Key": "name", "Values": [prefix]}],
                                      "MaxResults": 20}
            if token:
                kwargs["NextToken"] = token
            page = self.client.batch_get_secret_value(**kwargs)
            yield page
            token = page.get("NextToken")
            if not token:
                return

    def write_state(self, state: InstitutionKeys) -> InstitutionKeys:
        name = self._state_name(state.institution)
        new = replace(state, version=state.version + 1)
        text = json.dumps(new.to_json(), sort_keys=True)
        token = str(uuid.uuid5(_TOKENS, f"{name}#{new.version}"))
        try:
            if state.version == 0:
                self.client.create_secret(Name=name, SecretString=text, ClientRequestToken=token,
                                          Description="mailauth-provisioner DKIM key state "
                                                      "(no private key)")
            else:
                self.client.put_secret_value(SecretId=name, SecretString=text,
                                             ClientRequestToken=token)
        except Exception as exc:
            if _code(exc) == "ResourceExistsException":
                raise Conflict(f"{self.location}: the key state of {state.institution} changed "
                               f"while this run worked (version {new.version} exists)") from None
            raise self._fail(f"cannot write the key state of {state.institution}", exc) from None
        current = self._current_version(name)
        if current != new.version:
            raise Conflict(f"{self.location}: the key state of {state.institution} is at "
                           f"version {current}, not {new.version}")
        return new

    def _current_version(self, name: str) -> int:
        try:
            text = self.client.get_secret_value(SecretId=name)["SecretString"]
        except Exception as exc:
            raise self._fail(f"cannot read back {name}", exc) from None
        return self._parse(name, text).version

    # --- private keys -----------------------------------------------------------------------

    def _key_name(self, code: str, key_id: str) -> str:
        check_id(code, key_id)
        return f"{self.prefix}keys/{code}/{key_id}"

    def create_private(self, code: str, key_id: str, pem: bytes) -> bool:
        name = self._key_name(code, key_id)
        kwargs: dict[str, Any] = {"Name": name, "SecretString": pem.decode("ascii"),
                                  "Description": f"DKIM private key {key_id}"}
        if self.kms_key_id:
            kwargs["KmsKeyId"] = self.kms_key_id
        try:
            response = self.client.create_secret(**kwargs)
        except Exception as exc:
            if _code(exc) == "ResourceExistsException":
                return False
            raise self._fail(f"cannot store key {key_id}", exc) from None
        self._arns[name] = response["ARN"]
        return True

    def read_private(self, code: str, key_id: str) -> bytes:
        name = self._key_name(code, key_id)
        try:
            response = self.client.get_secret_value(SecretId=name)
        except Exception as exc:
            raise self._fail(f"cannot read key {key_id}", exc) from None
        self._arns[name] = response["ARN"]
        return str(response["SecretString"]).encode("ascii")

    def reference(self, code: str, key_id: str) -> str:
        name = self._key_name(code, key_id)
        if name not in self._arns:
            try:
                self._arns[name] = self.client.describe_secret(SecretId=name)["ARN"]
            except Exception as exc:
                raise self._fail(f"cannot describe key {key_id}", exc) from None
        return self._arns[name]


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
