"""The ES4PSBackup objects the operator writes: one per due schedule slot, and the owner its Job names.

The Job itself (copy, encrypt, store) is `builders.jobs.backup_job`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import naming
from ..domain import API_VERSION, BACKUP_KIND, Domain
from .common import Manifest


def scheduled_backup(domain: Domain, name: str) -> Manifest:
    """The ES4PSBackup of one schedule slot (its name says the slot: the same slot gives the same object)."""
    return {
        "apiVersion": API_VERSION,
        "kind": BACKUP_KIND,
        "metadata": {
            "name": name,
            "namespace": domain.namespace,
            "labels": {naming.BACKUP_DOMAIN_LABEL: domain.name, naming.PART_OF_LABEL: naming.PART_OF},
        },
        "spec": {"domain": domain.name},
    }


def backup_owner_reference(backup: Mapping[str, Any]) -> dict[str, Any]:
    """Makes a backup's Job garbage-collected with its ES4PSBackup."""
    return {
        "apiVersion": API_VERSION,
        "kind": BACKUP_KIND,
        "name": backup["metadata"]["name"],
        "uid": backup["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
