# Two commands matter: `make demo` and `make test`. Everything they need is installed from the two locks:
# requirements.txt (runtime: the DAGs, the package, the Docker image) and requirements-dev.txt (tests, bench, demo
# servers; constrained to the runtime lock). requirements-exclude.txt names what no resolution or install may pull in.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv

export AIRFLOW_HOME                := $(CURDIR)/var/airflow
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGS_FOLDER   := $(CURDIR)/dags
export ROSTERING_WORK_DIR          := $(CURDIR)/var/work

.PHONY: help venv airflow-db demo airflow test e2e lock bench clean

help:
	@echo "make demo     generate the demo district, start local endpoints, run the SIS snapshot and every vendor DAG"
	@echo "              through Airflow (SIS=powerschool or SIS=aeries: read it through that SIS's API stand-in)"
	@echo "make test     install and run the test suite (PostgreSQL on 127.0.0.1:5432 required when CI=true)"
	@echo "make airflow  the Airflow UI (airflow standalone) on the demo district, http://localhost:8080"
	@echo "make e2e      only the distributed tests: the compose topology natively on CeleryExecutor + the UI in Chromium"
	@echo "make lock     re-resolve requirements.txt from requirements.in, then requirements-dev.txt from requirements-dev.in"
	@echo "make bench    benchmark every vendor at S, M, XL on PostgreSQL (BENCH_SIZES=S for a quick one; bench/README.md)"

LOCKS := requirements.txt requirements-dev.txt requirements-exclude.txt

$(VENV)/.installed: $(LOCKS) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==0.13.9
	$(UV) pip install --quiet --python $(PY) --excludes requirements-exclude.txt -r requirements.txt -r requirements-dev.txt
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	touch $@

venv: $(VENV)/.installed

$(AIRFLOW_HOME)/.migrated: $(VENV)/.installed
	mkdir -p $(AIRFLOW_HOME)
	$(VENV)/bin/airflow db migrate > $(AIRFLOW_HOME)/migrate.log 2>&1 || (tail -30 $(AIRFLOW_HOME)/migrate.log; exit 1)
	touch $@

airflow-db: $(AIRFLOW_HOME)/.migrated

# SIS=powerschool | aeries: the demo district served by that SIS's local API stand-in, read over HTTP by the nightly
# snapshot (default: config/sis.yaml's source, sql_model over the demo SQLite file).
SIS ?=
SIS_ARG := $(if $(SIS),--sis $(SIS))

demo: venv airflow-db
	$(PY) -m rostering.devservers.demo run $(SIS_ARG)

airflow: venv airflow-db
	$(PY) -m rostering.devservers.demo airflow $(SIS_ARG)

test: venv airflow-db
	$(PY) -m pytest

# The docker-compose topology without containers (PostgreSQL metadata DB, Redis broker, scheduler, dag-processor,
# api-server, triggerer, Celery worker) running every vendor DAG, and the UI checked in headless Chromium (installed
# with apt-get when missing). `make test` runs these too, last; screenshots land in var/artifacts/.
e2e: venv
	$(PY) -m pytest -m e2e

# Needs PostgreSQL (ROSTERING_BENCH_PG_URL, default postgres@127.0.0.1:5432); creates and drops rostering_bench.
BENCH_SIZES ?= S M XL
bench: venv
	$(PY) -m bench --sizes $(BENCH_SIZES) $(BENCH_ARGS)

# Both locks keep their current pins unless requirements*.in asks otherwise (uv reads the old file as preferences);
# `make lock UPGRADE=--upgrade` re-resolves everything. The dev lock is constrained to the runtime lock (-c), so a
# package in both has one version.
UPGRADE ?=
COMPILE := $(UV) pip compile --quiet --python-version 3.11 --no-header --excludes requirements-exclude.txt $(UPGRADE)
lock:
	$(COMPILE) requirements.in -o requirements.txt
	sed -i '1i # Runtime lock for Python 3.11 (the DAGs, the package, the Docker image). Edit requirements.in, then: make lock' requirements.txt
	$(COMPILE) requirements-dev.in -o requirements-dev.txt
	sed -i '1i # Test, bench and demo lock for Python 3.11, on top of requirements.txt. Edit requirements-dev.in, then: make lock' requirements-dev.txt

clean:
	rm -rf var .pytest_cache
