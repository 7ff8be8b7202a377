"""What the operator, the DC and the worker agree on about the directory: where the product's accounts and
computers live.

The operator passes these to the DC and the worker (`ES4PS_USERS_OU`,
`ES4PS_WORKER_ACCOUNT`); the DC creates the OU and the account and delegates
the account's rights on that OU only; the worker binds as the account and
never leaves the OU.

The computers the portal pre-stages live in their own OU inside it
(`COMPUTERS_OU`), where the worker's rights extend to computer objects only;
no policy may name that OU for its accounts (`policies.normalize_ou`).
"""

from __future__ import annotations

# The OU whose accounts the workers manage, relative to the domain.
MANAGED_OU = "OU=ES4PS"
# The directory account the workers bind as (in CN=Users, outside the OU it manages).
WORKER_ACCOUNT = "es4ps-worker"
# The OU of the computers the portal manages, relative to the managed OU (and its name, which policies may not use).
COMPUTERS_OU_NAME = "Computers"
COMPUTERS_OU = f"OU={COMPUTERS_OU_NAME}"
