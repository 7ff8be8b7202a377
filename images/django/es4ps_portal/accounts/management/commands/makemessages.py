"""Django's makemessages (hack/update-translations.sh), also extracting the contract's plural sentences."""

from __future__ import annotations

from django.core.management.commands import makemessages


class Command(makemessages.Command):
    # es4ps_contract.texts.ngettext_noop marks a sentence and its plural, as ngettext would.
    xgettext_options = [*makemessages.Command.xgettext_options, "--keyword=ngettext_noop:1,2"]
