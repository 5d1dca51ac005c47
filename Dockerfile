# The project image: Airflow 3.3 and its providers from the pinned runtime lock (requirements.txt; the test, bench and
# demo tools of requirements-dev.txt are not in the image), plus the rostering package,
# its DAGs, plugins, SQL, expectation suites and vendor configuration -- baked in, so a deployment is one image tag.
# Used by every Airflow service of docker-compose.yaml. Build: docker compose build (or docker build -t rostering-airflow .)
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AIRFLOW_HOME=/opt/airflow \
    ROSTERING_HOME=/opt/rostering \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/rostering/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/rostering/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    ROSTERING_WORK_DIR=/opt/rostering/var/work \
    ROSTERING_STATE_DIR=/opt/rostering/var/state

# curl: the compose healthchecks; tini: a proper PID 1 (signals reach Airflow, zombies are reaped)
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl tini \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/rostering
# Dependencies first (cached layer): exactly the versions of the runtime lock, nothing resolved at build time.
# requirements-exclude.txt keeps out mysqlclient (a C build; MySQL is read through PyMySQL), so no compiler is needed.
COPY requirements.txt requirements-exclude.txt pyproject.toml ./
RUN pip install --no-cache-dir uv==0.13.9 \
    && uv pip install --system --no-cache --excludes requirements-exclude.txt -r requirements.txt

COPY src ./src
COPY include ./include
COPY config ./config
COPY dags ./dags
COPY plugins ./plugins
RUN uv pip install --system --no-cache --no-deps . \
    && useradd --uid 50000 --gid 0 --home-dir /opt/airflow --create-home airflow \
    && mkdir -p /opt/airflow/logs /opt/rostering/var/work /opt/rostering/var/state \
    && chown -R 50000:0 /opt/airflow /opt/rostering/var \
    && chmod 0700 /opt/rostering/var/work /opt/rostering/var/state

USER 50000
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "airflow"]
CMD ["version"]
