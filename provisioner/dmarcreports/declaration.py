"""The ramp's change to a declaration: ``dmarc.policy`` and ``dmarc.testing`` of one domain,
edited in the file's own text so that its comments, order and layout stay as they were.

PyYAML's composer gives each node's position; the edit replaces the value's characters (or
adds one line at the policy's indentation, or removes the ``testing: true`` line). Written by
hand because no YAML library here round-trips comments (ruamel.yaml would, as a new
dependency, for these three edits). The result is parsed again and must say what was meant.
"""

from __future__ import annotations

from typing import Any

import yaml

from provisioner.errors import ProvisionerError


class EditError(ProvisionerError):
    """The declaration cannot be edited safely: the message says where and what to do."""


def _child(node: Any, key: str) -> tuple[Any, Any] | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k, v
    return None


def _offset(text: str, mark: Any) -> int:
    return int(mark.index)


def set_rung(text: str, domain: str, policy: str, testing: bool, where: str) -> str:
    """``text`` with ``domains.<domain>.dmarc`` set to ``policy`` and ``testing``."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise EditError(f"{where}: not YAML: {exc}") from None
    domains = _child(root, "domains")
    entry = _child(domains[1], domain) if domains else None
    if entry is None:
        raise EditError(f"{where}: no domains.{domain}")
    dmarc = _child(entry[1], "dmarc")
    if dmarc is None or not isinstance(dmarc[1], yaml.MappingNode):
        raise EditError(f"{where}: domains.{domain} has no dmarc: mapping; add "
                        f"'dmarc: {{policy: none}}' first")
    node = dmarc[1]
    pol = _child(node, "policy")
    test = _child(node, "testing")
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement), applied last first
    if pol is None:
        raise EditError(f"{where}: domains.{domain}.dmarc has no policy:; add 'policy: none'")
    edits.append((_offset(text, pol[1].start_mark), _offset(text, pol[1].end_mark), policy))
    if test is not None:
        start, end = _offset(text, test[1].start_mark), _offset(text, test[1].end_mark)
        line_start = text.rfind("\n", 0, _offset(text, test[0].start_mark)) + 1
        line_end = text.find("\n", end)
        line_end = len(text) if line_end < 0 else line_end + 1
        alone = not node.flow_style and text[line_start:_offset(text, test[0].start_mark)
                                             ].strip() == "" and text[end:line_end].strip() == ""
        if testing:
            edits.append((start, end, "true"))
        elif alone:
            edits.append((line_start, line_end, ""))
        else:
            edits.append((start, end, "false"))
    elif testing:
        end = _offset(text, pol[1].end_mark)
        if node.flow_style:
            edits.append((end, end, ", testing: true"))
        else:
            column = pol[0].start_mark.column
            line_end = text.find("\n", end)
            line_end = len(text) if line_end < 0 else line_end
            edits.append((line_end, line_end, "\n" + " " * column + "testing: true"))
    out = text
    for start, end, new in sorted(edits, reverse=True):
        out = out[:start] + new + out[end:]
    data = yaml.safe_load(out)
    got = data["domains"][domain]["dmarc"]
    if got.get("policy") != policy or bool(got.get("testing", False)) != testing:
        raise EditError(f"{where}: the edit of domains.{domain}.dmarc did not read back; "
                        "edit it by hand")
    return out
