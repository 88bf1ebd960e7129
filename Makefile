# AI Coding Workbench. Every target installs what it needs into .venv and node_modules first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CDK := npx --no-install cdk
# System packages: python3 with venv, Node.js with npm (CDK CLI), git.
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: help install deploy destroy synth render test deploy-local destroy-local clean

help:
	@echo "make deploy         deploy to the AWS account of your current credentials"
	@echo "make destroy        remove the workbench"
	@echo "make synth          synthesize the CloudFormation template (no AWS access needed)"
	@echo "make render OUT=dir write the file bundle the instance receives, for review"
	@echo "make test           run every test"
	@echo "make deploy-local   no AWS account: deploy into a local AWS emulator and check it"
	@echo "make destroy-local  destroy that local deployment and check nothing is left"

$(BIN)/activate: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --editable .
	touch $(BIN)/activate

node_modules/.package-lock.json: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

install: $(BIN)/activate node_modules/.package-lock.json

synth: install
	$(CDK) synth --quiet $(CDK_ARGS)
	@echo "Template: cdk.out/$$($(BIN)/python -c 'from workbench.settings import load; print(load().stack_name)').template.json"

render: install
	@test -n "$(OUT)" || { echo "usage: make render OUT=dir"; exit 2; }
	$(BIN)/python -m workbench.bundle "$(OUT)"

deploy: install
	$(CDK) bootstrap $(CDK_ARGS)
	ALLOW_DATA_LOSS=$(ALLOW_DATA_LOSS) $(BIN)/python -m workbench.deploy_guard $(CDK_ARGS)
	$(CDK) deploy --require-approval never $(CDK_ARGS)

destroy: install
	$(CDK) destroy --force $(CDK_ARGS)

deploy-local: install
	$(BIN)/python -m workbench.local_deploy deploy

destroy-local: install
	$(BIN)/python -m workbench.local_deploy destroy

# The venv's tools (shellcheck, cfn-lint, litellm) first on PATH, as on an activated venv.
test: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

clean:
	rm -rf cdk.out .pytest_cache .local-aws
