"""The ES4PS portal: self-service registration of Active Directory accounts.

- `settings`: Django settings from the environment (docs/interfaces.md)
- `accounts`: the app (users, registration, verification, login, status)
- `broker`: the Celery app that publishes tasks and consumes result events
- `cli`: the `es4ps-portal serve|consume|manage` entrypoint
"""
