# Two commands do all set-up on a fresh machine:
#   make demo   — create .venv, install rca with all extras, run `rca demo`
#   make test   — install what the tests need (Python deps + Debian packages) and run them all
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
PIP     := $(VENV)/bin/pip
STAMP   := $(VENV)/.installed
APT_PACKAGES := prometheus victoria-metrics prometheus-alertmanager postgresql

.PHONY: demo test lint system-deps bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# CPU build of torch first, so sentence-transformers does not pull a multi-GB CUDA build
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[embeddings,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/rca demo

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test: $(STAMP) system-deps
	$(VENV)/bin/ruff check rca models connectors api tests
	$(PY) -m pytest -q -n 2

lint: $(STAMP)
	$(VENV)/bin/ruff check rca models connectors api tests

bench: $(STAMP)
	$(VENV)/bin/rca bench rca ../shared/data/rca/nezha-onlineboutique ../shared/data/rca/circa-sim ../shared/data/rca/pyrca-synthetic

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
