"""The ES4PS portal: self-service registration of Active Directory accounts.

Three layers, each importing only from those below it (images/django/layout.toml, checked by
`make lint`):

- ground: `accounts` (the user model, tokens, mails, e-mail domains, the password check),
  `audit` (the append-only trail), `database` (dumps, advisory locks), `client_address`,
  `broker` (the transport), `metrics`, `environment`, `middleware` (health probes);
- `provisioning`: the directory tasks (publish = sign, seal, write to the outbox; the relay; results; expiry);
- `web`: the pages, forms and rate limits, the approval workflow, the staff actions and the admin.

`settings`, `urls`, `cli` (the `es4ps-portal serve|consume|manage` entrypoint), `wsgi` and
`gunicorn_hooks` put them together.
"""
