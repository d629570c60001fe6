"""Generate a repository of N institutions for benchmarks: provisioner.yaml plus zones/*.yaml.

Declarations vary the way real ones do: most are the guide's minimal form, some carry the
customer's own SPF includes, a return path, DMARC reporting, several domains or external DNS.
"""

from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

INCLUDES = [
    "_spf.google.com",
    "spf.protection.outlook.com",
    "servers.mcsv.net",
    "spf.mandrillapp.com",
    "_spf.salesforce.com",
    "sendgrid.net",
]


def declaration(i: int, rng: random.Random) -> str:
    code = f"inst{i:05d}"
    lines = [
        "# yaml-language-server: $schema=../schemas/institution.schema.json",
        f"institution: {code}",
        f"name: Institution {i}",
        f"contact: dns@{code}.example",
        "domains:",
        f"  {code}.example:",
    ]
    kind = i % 10
    if kind in (1, 2):
        lines += ["    spf:", f"      include: [{', '.join(rng.sample(INCLUDES, 2))}]"]
    if kind == 3:
        lines += ["    dns: external"]
    lines += [
        "    dmarc:",
        f"      policy: {rng.choice(['none', 'quarantine', 'reject'])}",
        f"      rua: [mailto:dmarc@{code}.example]",
    ]
    if kind in (4, 5):
        lines += ["    return_path: mail"]
    if kind == 6:
        lines += [f"  news.{code}.example:", f"    zone: {code}.example", "    ttl: 1800"]
    return "\n".join(lines) + "\n"


def generate(root: Path, count: int, seed: int = 7) -> Path:
    """Write the repository under ``root`` (emptied first) and return its provisioner.yaml."""
    if root.exists():
        shutil.rmtree(root)
    (root / "zones").mkdir(parents=True)
    config = root / "provisioner.yaml"
    shutil.copy(REPO / "provisioner.yaml", config)
    rng = random.Random(seed)
    for i in range(count):
        (root / "zones" / f"inst{i:05d}.yaml").write_text(declaration(i, rng))
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("count", type=int)
    parser.add_argument("directory", type=Path)
    args = parser.parse_args()
    print(generate(args.directory, args.count))


if __name__ == "__main__":
    main()
