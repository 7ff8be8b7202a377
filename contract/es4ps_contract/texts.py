"""Sentences meant for a person, written once in English and translated where they are shown.

The contract's rules (field checks, the password policy, the workers'
reasons) explain themselves in English, the language of logs and result
events. Each such sentence is a `Text`: its template and its values apart,
so the portal can look the template up in its catalogue (gettext) and fill in
the values afterwards; a sentence whose words follow a number has a plural
template too (the catalogue knows each language's plural rules). `gettext_noop`
and `ngettext_noop` mark templates for the message extractor (the portal's
`makemessages`); the contract's own catalogue lives in `locale/`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


def gettext_noop(template: str) -> str:
    """Mark `template` for translation without translating it here (the portal translates it when shown)."""
    return template


def ngettext_noop(singular: str, plural: str) -> tuple[str, str]:
    """Mark a sentence and its plural (for a `count` other than 1) for translation."""
    return singular, plural


@dataclass(frozen=True)
class Text:
    """A sentence for a person: an English template with %(name)s placeholders, and their values.

    With `plural`, `values["count"]` chooses between the two templates.
    """

    template: str
    values: Mapping[str, object] = field(default_factory=dict)
    plural: str = ""

    @classmethod
    def counted(cls, forms: tuple[str, str], count: int, **values: object) -> Text:
        """A sentence about `count` things, from `ngettext_noop`'s pair."""
        return cls(forms[0], {"count": count, **values}, plural=forms[1])

    def __str__(self) -> str:
        template = self.plural if self.plural and self.values["count"] != 1 else self.template
        return template % self.values if self.values else template

    def translated(self, gettext: Callable[[str], str], ngettext: Callable[[str, str, int], str]) -> str:
        """The sentence in the language the functions translate into (the English one for unknown templates)."""
        plural = self.plural
        template = ngettext(self.template, plural, self.values["count"]) if plural else gettext(self.template)
        return template % self.values if self.values else template
