# Two commands matter: `make demo` and `make test`. Everything they need is installed from requirements.txt.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv

export AIRFLOW_HOME                := $(CURDIR)/var/airflow
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGS_FOLDER   := $(CURDIR)/dags
export ROSTERING_WORK_DIR          := $(CURDIR)/var/work

.PHONY: help venv airflow-db demo airflow test lock bench clean

help:
	@echo "make demo     generate the demo district, start local endpoints, run every vendor DAG through Airflow"
	@echo "make test     install and run the test suite (PostgreSQL on 127.0.0.1:5432 required when CI=true)"
	@echo "make airflow  the Airflow UI (airflow standalone) on the demo district, http://localhost:8080"
	@echo "make lock     re-resolve requirements.txt from requirements.in"

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==0.13.9
	$(UV) pip install --quiet --python $(PY) -r requirements.txt
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	touch $@

venv: $(VENV)/.installed

$(AIRFLOW_HOME)/.migrated: $(VENV)/.installed
	mkdir -p $(AIRFLOW_HOME)
	$(VENV)/bin/airflow db migrate > $(AIRFLOW_HOME)/migrate.log 2>&1 || (tail -30 $(AIRFLOW_HOME)/migrate.log; exit 1)
	touch $@

airflow-db: $(AIRFLOW_HOME)/.migrated

demo: venv airflow-db
	$(PY) -m rostering.devservers.demo run

airflow: venv airflow-db
	$(PY) -m rostering.devservers.demo airflow

test: venv airflow-db
	$(PY) -m pytest

lock:
	$(UV) pip compile --quiet --python-version 3.11 --no-header requirements.in -o requirements.txt
	sed -i '1i # Complete pinned lock for Python 3.11. Edit requirements.in, then: make lock' requirements.txt

clean:
	rm -rf var .pytest_cache
