"""ES4PSDomain samples: as the API server returns them (unit tests), and examples/acme.yaml to apply (cluster tests).

The defaults come from the CRD itself (applied the way the API server applies
structural defaults), so the unit tests exercise the same defaults users get.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from es4ps_contract.passwords import PasswordPolicy
from es4ps_localcluster.paths import ROOT
from es4ps_operator.builders.portal import portal_spec_environment
from es4ps_operator.domain import Domain

CRD = ROOT / "crds" / "es4ps.io_es4psdomains.yaml"
CRDS = (CRD, ROOT / "crds" / "es4ps.io_es4psbackups.yaml")
EXAMPLE = ROOT / "examples" / "acme.yaml"


def crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def apply_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """Fill in the schema's defaults like the API server does: recursively, also inside defaulted objects."""
    if isinstance(value, dict) and "properties" in schema:
        for key, sub in schema["properties"].items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(value[key], sub)
    elif isinstance(value, list) and "items" in schema:
        return [apply_defaults(item, schema["items"]) for item in value]
    return value


def domain_body(spec: dict[str, Any], name: str = "acme", namespace: str = "acme") -> dict[str, Any]:
    """An ES4PSDomain as read from the API server: defaulted, with uid and generation."""
    body = {
        "apiVersion": "es4ps.io/v1alpha1",
        "kind": "ES4PSDomain",
        "metadata": {"name": name, "namespace": namespace, "uid": "0000-uid", "generation": 3},
        "spec": copy.deepcopy(spec),
    }
    return apply_defaults(body, crd_schema())


# The required fields, and the mail server a domain needs to become Ready.
MINIMAL_SPEC = {
    "realm": "ad.acme.example",
    "allowedEmailDomains": ["acme.example"],
    "portal": {"host": "accounts.acme.example", "smtp": {"host": "smtp.acme.example", "from": "accounts@acme.example"}},
}


def make_domain(**spec_changes: Any) -> Domain:
    """A minimal domain with some top-level spec fields replaced."""
    return Domain.from_body(domain_body(MINIMAL_SPEC | spec_changes))


def example_domain(namespace: str, **spec_changes) -> dict:
    """examples/acme.yaml placed in `namespace`, with top-level spec fields replaced."""
    domain = yaml.safe_load(EXAMPLE.read_text())
    domain["metadata"]["namespace"] = namespace
    domain["spec"].update(spec_changes)
    return domain


def default_password_policy(**changes: Any) -> PasswordPolicy:
    """The password policy of a domain whose spec sets none (the CRD's defaults), with some settings changed."""
    return PasswordPolicy.from_json(make_domain().directory.password_policy).replace(**changes)


def portal_spec_env(**spec_changes: Any) -> dict[str, str]:
    """The portal's variables that carry the spec (limits, policy, language...) as the operator writes them.

    The portal has no defaults of its own for them: a portal run outside the
    operator gets them from here, i.e. from the CRD through the operator.
    """
    return {variable["name"]: variable["value"] for variable in portal_spec_environment(make_domain(**spec_changes))}
