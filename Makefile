# AI Coding Workbench. Every target installs what it needs into .venv and node_modules first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CHECKOV_VENV := .venv-checkov
CDK := npx --no-install cdk
# System packages: python3 with venv, Node.js with npm (CDK CLI), git. The tests also run real
# programs from Debian's packages (SYSTEM_PACKAGES: command -> package), installed by
# `make test` when missing (as root, which CI is; otherwise it names what to install).
TEST_COMMANDS := redis-server:redis-server redis-cli:redis-tools pg_isready:postgresql-client \
	pg_ctlcluster:postgresql strace:strace ip:iproute2 unshare:util-linux nsenter:util-linux \
	iptables:iptables ip6tables:iptables iptables-restore:iptables \
	blkid:util-linux mkfs.xfs:xfsprogs mkfs.ext4:e2fsprogs
PROGRAMS := tests/programs
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: help install system-packages test-install lint bench-gateway deploy destroy deploy-team destroy-team synth render test deploy-local destroy-local workshop-studio workshop-up workshop-down package clean

help:
	@echo "make deploy         deploy to the AWS account of your current credentials"
	@echo "make destroy        remove the workbench, keeping its data in a snapshot"
	@echo "make synth          synthesize the CloudFormation template (no AWS access needed)"
	@echo "make render OUT=dir write the file bundle the instance receives, for review"
	@echo "make test           the lint and type gate, then every test"
	@echo "make deploy-local   no AWS account: deploy into a local AWS emulator and check it"
	@echo "make destroy-local  destroy that local deployment and check nothing is left"
	@echo "make bench-gateway  what the LiteLLM gateway adds to time to first token (1 and 8 streams)"
	@echo "make workshop-studio OUT=dir  Workshop Studio content: template without CDK bootstrap, assets, guide"
	@echo "make package BUCKET=name      upload that template to your bucket, print a quick-create link"
	@echo "make workshop-up ROSTER=file   a room of participants in this account (workshop-down removes it)"

$(BIN)/activate: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --editable .
	touch $(BIN)/activate

node_modules/.package-lock.json: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

install: $(BIN)/activate node_modules/.package-lock.json

$(CHECKOV_VENV)/bin/checkov: requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $@

# code-server from npm without its postinstall (which fetches from GitHub and is not needed
# for its HTTP front), on the Node.js 22 that the `node` package's own install script brings.
$(PROGRAMS)/node_modules/.package-lock.json: $(PROGRAMS)/package.json $(PROGRAMS)/package-lock.json
	cd $(PROGRAMS) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	cd $(PROGRAMS) && npm rebuild node --loglevel=error
	touch $@

system-packages:
	@missing=""; for pair in $(TEST_COMMANDS); do \
	  command -v "$${pair%%:*}" >/dev/null || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system packages for the tests:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "the tests need these system packages:$$missing (e.g. sudo apt-get install$$missing)"; exit 1; fi; \
	fi

test-install: install system-packages $(PROGRAMS)/node_modules/.package-lock.json $(CHECKOV_VENV)/bin/checkov

synth: install
	$(CDK) synth --quiet $(CDK_ARGS)
	@echo "Template: cdk.out/$$($(BIN)/python -c 'from workbench.settings import load; print(load().stack_name)').template.json"

render: install
	@test -n "$(OUT)" || { echo "usage: make render OUT=dir"; exit 2; }
	$(BIN)/python -m workbench.bundle "$(OUT)"

# Bootstraps, plans a change set, refuses one that would lose data, executes exactly that one
# and follows it to the box's boot signal (workbench/deploy.py).
deploy: install
	ALLOW_DATA_LOSS=$(ALLOW_DATA_LOSS) $(BIN)/python -m workbench.deploy $(CDK_ARGS)

# Stops the box, destroys the stack and names the snapshot its data volume leaves (workbench/destroy.py).
destroy: install
	ALLOW_DATA_LOSS=$(ALLOW_DATA_LOSS) $(BIN)/python -m workbench.destroy $(CDK_ARGS)

# The team gateway (README, A team gateway): the same guard as make deploy, the settings' team section.
deploy-team: install
	ALLOW_DATA_LOSS=$(ALLOW_DATA_LOSS) $(BIN)/python -m workbench.team deploy $(CDK_ARGS)

destroy-team: install
	$(BIN)/python -m workbench.team destroy $(CDK_ARGS)

deploy-local: install
	$(BIN)/python -m tools.local_aws.deploy deploy

destroy-local: install
	$(BIN)/python -m tools.local_aws.deploy destroy

# The lint and type gate first (rules in pyproject.toml), then every test. The venv's tools
# (shellcheck, cfn-lint, litellm) first on PATH, as on an activated venv.
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: test-install lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

# Not a test: what LiteLLM adds to time to first token, 1 and 8 streams (benchmarks/gateway.py).
bench-gateway: install
	$(BIN)/python -m benchmarks.gateway

# One CloudFormation template that deploys without the CDK or its bootstrap, for Workshop Studio
# (content tree) or your own account's console (upload + quick-create link): workbench/workshop_studio.py.
workshop-studio: install
	@test -n "$(OUT)" || { echo "usage: make workshop-studio OUT=dir [CDK_ARGS='-c key=value']"; exit 2; }
	$(BIN)/python -m workbench.workshop_studio content "$(OUT)" $(CDK_ARGS)

# A workshop room in this account (README, Run a workshop in one account): ARGS such as --parallel 8,
# --despite-quotas (up) or --keep-data (down); PROFILE and REGION as for the workbench command.
WORKBENCH_AWS_ARGS = $(if $(PROFILE),--profile $(PROFILE)) $(if $(REGION),--region $(REGION))
workshop-up workshop-down: workshop-%: install
	@test -n "$(ROSTER)" || { echo "usage: make $@ ROSTER=room.yaml [PROFILE=name] [REGION=name] [ARGS='...']"; exit 2; }
	$(BIN)/workbench $(WORKBENCH_AWS_ARGS) workshop $* "$(ROSTER)" $(ARGS)

package: install
	@test -n "$(BUCKET)" || { echo "usage: make package BUCKET=name [PREFIX=path/] [CDK_ARGS='-c key=value --profile NAME']"; exit 2; }
	$(BIN)/python -m workbench.workshop_studio package --bucket "$(BUCKET)" --prefix "$(PREFIX)" $(CDK_ARGS)

clean:
	rm -rf cdk.out .pytest_cache .local-aws
