"""The administrator's language: English in the code, other languages in gettext catalogues.

Every sentence shown to an institution's DNS administrator is a message id, marked ``N_`` where
it is defined (so ``pybabel extract -k N_`` finds it) and translated when it is shown, with
``str.format`` fields filled after translation. Catalogues are ``provisioner/locale/<lang>.po``,
read with Babel (imported only for a language other than English), so no compiled ``.mo``
file has to be built or committed. A message without a translation shows in English.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
LANGUAGES = ("en", "fr")

Translate = Callable[..., str]


def N_(message: str) -> str:  # the gettext convention, and Babel's keyword
    """Marks ``message`` for extraction; translated later, when shown."""
    return message


@cache
def catalogue(lang: str) -> Mapping[str, str]:
    """msgid -> msgstr for ``lang`` (empty for English, and for a missing translation)."""
    if lang == "en":
        return {}
    from babel.messages.pofile import read_po

    with (LOCALE_DIR / f"{lang}.po").open("rb") as handle:
        catalog = read_po(handle, locale=lang)
    return {str(m.id): str(m.string) for m in catalog if m.id and m.string and not m.fuzzy}


def translator(lang: str) -> Translate:
    """``t(msgid, **fields)``: the translation of ``msgid`` with its fields filled."""
    table = catalogue(lang)

    def t(message: str, **fields: Any) -> str:
        text = table.get(message, message)
        return text.format(**fields) if fields else text

    return t
