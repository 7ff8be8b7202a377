"""The directory side of the portal: the tasks published for each account and what became of them.

    models       ProvisioningTask: one signed task, its state and the worker's answer
    publishing   sign, seal and publish the task of each directory change (in the change's transaction)
    results      record the workers' result events (idempotent) and the account's directory state
    expiry       unconfirmed registrations go, with their directory account
    status       what the status page shows, and whose status a browser follows
    tasks        the Celery task the consumer runs for each result event
    views        the status page and its JSON

The transport (the Celery app, publishing with confirms) is es4ps_portal.broker;
the people, their tokens and forms are es4ps_portal.accounts.
"""
