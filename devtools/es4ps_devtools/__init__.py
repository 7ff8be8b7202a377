"""ES4PS's development commands: the product built and deployed on the local cluster, as a platform team would.

The local cluster (`es4ps_localcluster`) knows Kubernetes and nothing of this
product; this package is where the product meets it:

- `paths`: the checkout's product files (VERSION, charts, examples)
- `images`: the product's images (operator, portal, samba, rabbitmq) on the local cluster's image machinery
- `deployment`: the charts with the example domain on a cluster, the steps `make demo` and the e2e tests share
- `demo`: `make demo` (up, mail, down) and its closing instructions, read from the domain it deployed
- `docs`: the generated tables of docs/ (from the environment declarations of each process)
- `cli`: `python -m es4ps_devtools images|demo|docs ...` (what the Makefile runs)

The test harness (`es4ps_testkit.e2e`) deploys through `deployment`; nothing
here imports the tests.
"""
