"""The directory side of the portal: the tasks published for each account and what became of them.

    models       ProvisioningTask: one signed task, its state and the worker's answer
    publishing   sign, seal and write the task of each directory change to the outbox (in the change's transaction)
    outbox       the relay that hands the written tasks to the broker
    results      record the workers' result events (idempotent) and the account's directory state
    expiry       unconfirmed registrations go, with their directory account
    policies     which OU, groups and Unix attributes an address's policy gives
    tasks        the Celery task the consumer runs for each result event

It stands on the ground layer (es4ps_portal.accounts: the user model, mails;
es4ps_portal.audit; the transport, es4ps_portal.broker) and imports nothing
from the web layer (es4ps_portal.web), which decides when each change is made.
"""
