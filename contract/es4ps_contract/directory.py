"""What the operator, the DC and the worker agree on about the directory: where the product's accounts live.

The operator passes these to the DC and the worker (`ES4PS_USERS_OU`,
`ES4PS_WORKER_ACCOUNT`); the DC creates the OU and the account and delegates
the account's rights on that OU only; the worker binds as the account and
never leaves the OU.
"""

from __future__ import annotations

# The OU whose accounts the workers manage, relative to the domain.
MANAGED_OU = "OU=ES4PS"
# The directory account the workers bind as (in CN=Users, outside the OU it manages).
WORKER_ACCOUNT = "es4ps-worker"
