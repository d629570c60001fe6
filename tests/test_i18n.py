"""Every sentence the administrators read has its French translation (issue 13), with the same
fields; a French run prints French."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

from provisioner.external.i18n import LOCALE_DIR, catalogue, translator
from tests.conftest import REPO


def _extracted(tmp_path: Path) -> list[str]:
    pot = tmp_path / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-k", "N_",
                    "--no-location", "-o", str(pot), str(REPO / "provisioner" / "external")],
                   check=True, capture_output=True, timeout=120)
    with pot.open("rb") as handle:
        return [str(m.id) for m in read_po(handle) if m.id]


def test_every_message_has_a_french_translation_with_the_same_fields(tmp_path: Path) -> None:
    messages = _extracted(tmp_path)
    assert len(messages) > 50
    french = catalogue("fr")
    missing = [m for m in messages if m not in french]
    assert missing == [], missing
    for message in messages:
        assert set(re.findall(r"{(\w+)}", message)) == set(re.findall(r"{(\w+)}",
                                                                        french[message])), message
    with (LOCALE_DIR / "fr.po").open("rb") as handle:
        stale = [str(m.id) for m in read_po(handle) if m.id and str(m.id) not in messages]
    assert stale == [], f"messages no longer in the code: {stale}"


def test_translator_fills_fields_after_translating() -> None:
    t = translator("fr")
    assert t("DNS records for {name} ({code})", name="Acme", code="acme") == \
        "Enregistrements DNS pour Acme (acme)"
    assert translator("en")("Status") == "Status"
