# ES4PS for Kubernetes. `make help` lists the targets.
#
# The two commands of the README:  make demo   (the main job)
#                                  make test   (every test; what .ci/run calls)

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

export PATH := $(CURDIR)/.local/bin:$(PATH)
export KUBECONFIG := $(CURDIR)/.local/kubeconfig
PYTHON := $(CURDIR)/.venv/bin/python
# Quoted: the checkout may live in a folder whose path has spaces.
LOCALCLUSTER := "$(PYTHON)" -m es4ps_localcluster
DEVTOOLS := "$(PYTHON)" -m es4ps_devtools
NODE ?= kwok
NODES ?=
PYTEST_ARGS ?=

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: setup
setup: setup-base ## install Debian packages, the venv, the compiled translations and the Go-built tools (idempotent, cached)
	@hack/build-tools.sh

.PHONY: setup-base
setup-base: ## setup without the Go-built tools (make demo builds them while it builds the images)
	@hack/setup-apt.sh
	@hack/setup-venv.sh
	@hack/compile-translations.sh

.PHONY: cluster
cluster: setup ## start the local cluster in the background (NODE=kwok|real, or NODES=3: real nodes in namespaces)
	@$(LOCALCLUSTER) up --node $(NODE) $(if $(NODES),--nodes $(NODES))

.PHONY: cluster-down
cluster-down: ## stop the local cluster (only the processes it recorded) and wipe its data
	@$(LOCALCLUSTER) down

.PHONY: cluster-status
cluster-status: ## say whether the local cluster runs
	@$(LOCALCLUSTER) status

.PHONY: test
test: setup ## run every test (unit and integration) with pytest
	@hack/test.sh "$(PYTHON)" $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: ## run only the unit tests (no services)
	@"$(PYTHON)" -m pytest tests/unit $(PYTEST_ARGS)

.PHONY: run-operator
run-operator: ## run the operator in the foreground against the local cluster (.local/kubeconfig)
	@kubectl apply --server-side -f crds/es4ps.io_es4psdomains.yaml >/dev/null
	@ES4PS_LOG_FORMAT=plain ES4PS_BROKER_IMAGE=es4ps/rabbitmq:$$(cat VERSION) "$(PYTHON)" -m es4ps_operator

.PHONY: e2e-kind
e2e-kind: setup ## the end-to-end tests on a kind cluster (needs Docker with registry access)
	@hack/e2e-kind.sh $(PYTEST_ARGS)

.PHONY: lint
lint: ## ruff (lint and format check), and the layout rules: imports only downwards, no cycle, small files
	@"$(PYTHON)" -m ruff check .
	@"$(PYTHON)" -m ruff format --check .
	@"$(PYTHON)" -m es4ps_testkit.layout check

.PHONY: release
release: setup ## publish images and charts with SBOMs and signatures: make release REGISTRY=host/path COSIGN_KEY=cosign.key
	@test -n "$(REGISTRY)" -a -n "$(COSIGN_KEY)" || { echo "usage: make release REGISTRY=host/path COSIGN_KEY=cosign.key [REGISTRY_CA=ca.crt]" >&2; exit 2; }
	@$(DEVTOOLS) release --registry "$(REGISTRY)" --key "$(COSIGN_KEY)" $(if $(REGISTRY_CA),--ca-file "$(REGISTRY_CA)")

.PHONY: docs
docs: ## rewrite the generated tables of docs/ (each process's environment variables)
	@$(DEVTOOLS) docs docs/interfaces.md docs/operator.md

.PHONY: third-party
third-party: ## regenerate the cert-manager CRDs and KWOK stages from the pinned modules
	@hack/update-third-party.sh

.PHONY: images
images: setup ## build the container images (operator, portal, samba) with a project-owned dockerd if needed
	@$(DEVTOOLS) images build operator portal samba rabbitmq
	@$(LOCALCLUSTER) images build
	@$(DEVTOOLS) images list

.PHONY: images-down
images-down: ## stop the dockerd that `make images` started
	@$(LOCALCLUSTER) images down

.PHONY: demo
demo: setup-base ## the main job: the whole product on a real local node; prints where to register
	@$(DEVTOOLS) demo up

.PHONY: demo-mail
demo-mail: ## print the newest mail the demo's portal sent (verification link and code)
	@$(DEVTOOLS) demo mail

.PHONY: demo-down
demo-down: ## stop everything `make demo` started
	@$(DEVTOOLS) demo down
