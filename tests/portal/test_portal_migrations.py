"""The models and the migrations agree: a change to a model comes with its migration (branches merged
side by side renumber theirs, and this says when one was missed)."""

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_every_model_change_has_its_migration():
    call_command("makemigrations", "--check", "--dry-run", verbosity=1)
