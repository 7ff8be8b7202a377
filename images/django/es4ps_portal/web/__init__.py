"""The portal's web layer: what people and staff do through the browser, on top of the layers below.

    views        the pages (registration, sign-in and passwords, account and status)
    forms        their validation (the contract's field rules, the domain's password policy)
    ratelimit    the limits per client address and per account
    status       what the status page shows, and whose status a browser follows
    approval     a confirmed registration to an enabled account (manual approval, its mails)
    staff        the staff actions, one account at a time
    admin        the admin's user list and the staff actions over a selection

Below it: es4ps_portal.provisioning (directory tasks: publish, results) and
the ground layer (es4ps_portal.accounts: people, tokens, mails; audit; the
client address). Nothing below imports from here (images/django/layout.toml,
checked by `make lint`); mails link to these pages by URL name only.
"""
