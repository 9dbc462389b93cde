# make up    install what is missing, then start everything with embedded defaults and demo data
# make test  install what is missing, then run the whole suite (unit, contract, integration)
# make down  stop what `make up` started
.PHONY: up down test faults install prompts lint bench

export HOTLINE_TEST_PG_URL ?= postgresql+psycopg://hotline:hotline@127.0.0.1:5432/postgres

install:
	@sh scripts/install.sh

prompts: install
	@.venv/bin/hotline prompts build

up: install
	@.venv/bin/hotline up

down:
	@if [ -x .venv/bin/hotline ]; then .venv/bin/hotline down; fi

# tests/faults/ (issue 11's fault harness: nine faults under a steady SIPp load, about 15 min)
# is part of `make test`; `make faults` runs it alone.
test: prompts
	@.venv/bin/python -m pytest -q -p no:cacheprovider tests

faults: prompts
	@.venv/bin/python -m pytest -q -p no:cacheprovider tests/faults

lint:
	@.venv/bin/ruff check . && .venv/bin/mypy acd asterisk_conf callcenter config cti hotline ivr prompts recorder agent_desktop workorders
