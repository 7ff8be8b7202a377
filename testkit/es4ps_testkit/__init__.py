"""The ES4PS test harness: real services and the product's processes, for the tests and the benchmarks.

Plain modules (no pytest fixtures; `bench/` imports them like any library):

- `ca`: a throwaway certificate authority (`ThrowawayCA`, on es4ps_localcluster.pki)
- `rabbitmq`: RabbitMQ with mutual TLS and EXTERNAL login (`RabbitMQ`)
- `samba`: a Samba AD DC from the real entrypoint (`SambaDC`) and checks against it
- `worker`: the contract's key pairs as files (`ContractKeys`) and the real worker (`DirectoryWorker`)
- `tasks`: a portal stand-in publishing signed tasks and collecting result events (`TaskClient`)
- `postgres`: a throwaway PostgreSQL server from Debian's package (`PostgreSQL`)
- `mail`: an SMTP server that keeps every mail (`MailCatcher`)
- `registration`: the registration form data of tests and benchmarks (names, `GOOD_PASSWORD`, unique names)
- `portal_client`: a person using the portal over HTTP (`PortalClient`)
- `live_portal`: the portal as its real processes (`LivePortal`) and a look into its task queue
- `portal_fill`: a campus-size portal database written through the models (benchmarks)
- `portal_queries`: the portal's per-request queries and the index each must use
- `metrics`: scraping a Prometheus endpoint (`scrape`, `Scrape.value`)
- `kube`: a cluster driven through kubectl and helm as a user would (`KubeCluster`)
- `domains`: ES4PSDomain samples as the API server returns them (CRD defaults applied)
- `operator_harness`: the operator as a process with exactly its RBAC (`OperatorProcess`, `operator_identity`)
- `operator_checks`: a domain and its children as kubectl shows them
- `e2e`: the product deployed as a platform team would (`Deployment`; the real node or kind)

pytest plugins (fixtures), loaded by tests/conftest.py with `pytest_plugins`:
`es4ps_testkit.plugins.services`, `.mail`, `.cluster`, `.operator`, `.portal`, `.e2e`.

Polling goes through `es4ps_localcluster.processes.wait_until`, processes through its supervisor.
"""


class ServiceError(RuntimeError):
    """A service did not start or stop as expected; the message carries the tail of its log."""
