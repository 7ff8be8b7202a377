"""pytest plugins of the ES4PS tests: fixtures around es4ps_testkit's services, loaded by tests/conftest.py.

- `services`: test CA, RabbitMQ, Samba DC, contract keys, the worker, a task client, unique usernames
- `mail`: the SMTP server that catches the portal's mails
- `cluster`: the local cluster (KWOK or the real node) and fresh namespaces; e2e tests run last
- `operator`: the CRD, the operator's identity, operator processes serving a test's namespace
- `portal`: Django configured for in-process portal tests (at configure time), the live portal's processes
- `e2e`: the product deployed on the real node (or kind) as a platform team would
"""
