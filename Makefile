# Everything runs from the project's own virtual environment, built from the
# requirements files on first use, so a fresh machine needs only Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run reset test clean package deploy bench load common-passwords mutate smoke

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

# The API on this machine (devserver/serve.py supervises it); manage.py holds
# only the operator commands.
run: $(STAMP)
	$(PY) -m devserver.serve

# Drops the data make run keeps (.local/dynamodb.json, or under
# LOCAL_DATA_DIR): every table and item. It refuses while a make run serves
# on it. The signing secret beside it is kept.
reset: $(STAMP)
	@$(PY) -m devserver.kept_data reset

test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) build .pytest_cache .coverage mutants

# Mutation testing of the modules that decide who gets in ([mutmut] in
# setup.cfg): each surviving mutant is printed with its diff, and each must
# be one that docs/security.md lists as equivalent. Slow (tens of minutes),
# so not part of `make test`; every run starts from a fresh mutants/.
MUTATE_CHILDREN ?= 2
mutate: $(STAMP)
	rm -rf mutants
	$(VENV)/bin/mutmut run --max-children $(MUTATE_CHILDREN)
	@$(VENV)/bin/mutmut export-cicd-stats >/dev/null && cat mutants/mutmut-cicd-stats.json && echo
	@for m in $$($(VENV)/bin/mutmut results | awk -F: '{print $$1}'); do $(VENV)/bin/mutmut show $$m; done

# The deployment of a stage, in build/$(STAGE)/ so that one stage's build
# never overwrites another's: sam.json (chalice's template merged with the
# tables, log groups and Gateway Responses) and deployment.zip. The code that
# builds it lives in deploy/, outside the zip.
STAGE ?= dev
BUILD := build/$(STAGE)
package: $(STAMP)
	rm -rf $(BUILD) && mkdir -p $(BUILD)
	$(PY) -m deploy.template --stage $(STAGE) > $(BUILD)/merge.json
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(VENV)/bin/chalice package \
		--stage $(STAGE) --merge-template $(BUILD)/merge.json $(BUILD)/package
	mv $(BUILD)/package/sam.json $(BUILD)/package/deployment.zip $(BUILD)/ && rmdir $(BUILD)/package
	$(PY) -m deploy.package $(BUILD)/deployment.zip

# `make deploy STAGE=dev BUCKET=...` (docs/deploy.md): the package, the
# stage's signing secret created in SSM if missing, the code and template
# uploaded to BUCKET, the stack login-service-$(STAGE) created or updated,
# its URL printed (and kept in $(BUILD)/url), then `make smoke` against it.
# PARAMETERS='Name=value ...' sets the template's parameters; EMAIL_FROM and
# PUBLIC_URL (required) come from the environment or the command line.
deploy: $(STAMP)
	@test -n "$(BUCKET)" || { echo "make deploy needs BUCKET=an-s3-bucket, in the stage's region, for the code and the template: make deploy STAGE=$(STAGE) BUCKET=my-bucket" >&2; exit 2; }
	$(PY) -m deploy.stack --stage $(STAGE) --bucket "$(BUCKET)" --check
	$(MAKE) --no-print-directory package STAGE=$(STAGE)
	$(PY) -m deploy.stack --stage $(STAGE) --bucket "$(BUCKET)" $(PARAMETERS)
	$(MAKE) --no-print-directory smoke BASE_URL="$$(cat $(BUILD)/url)"

# chalicelib/common-passwords.txt.gz, rebuilt from zxcvbn's list.
common-passwords: $(STAMP)
	$(PY) -m deploy.common_passwords

# The benchmark: a table on stdout and build/bench.json (see README, Performance),
# then `make load`.
bench: $(STAMP)
	$(MAKE) --no-print-directory package STAGE=dev
	$(PY) tests/bench.py
	$(PY) tests/load.py

# The real `make run` stack under CLIENTS people's use for DURATION seconds:
# requests a second, every 5xx and wrong answer (exit 1 if any), build/load.json.
CLIENTS ?= 16
DURATION ?= 60
load: $(STAMP)
	$(PY) tests/load.py --clients $(CLIENTS) --duration $(DURATION)

# A deployed stage (or `make run`) checked from outside: the README
# walkthrough through a client generated from its own OpenAPI document, API
# Gateway's 401/403/404, and the user it created deleted again. Exits
# non-zero, printing each difference.
smoke: $(STAMP)
	@test -n "$(BASE_URL)" || { echo "usage: make smoke BASE_URL=https://ID.execute-api.REGION.amazonaws.com/STAGE" >&2; exit 2; }
	$(PY) -m deploy.smoke "$(BASE_URL)"
