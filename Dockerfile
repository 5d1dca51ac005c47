# The project image: Airflow 3.3 and the providers from the pinned lock, plus the rostering package.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 AIRFLOW_HOME=/opt/airflow ROSTERING_HOME=/opt/rostering
WORKDIR /opt/rostering
COPY requirements.txt pyproject.toml ./
RUN pip install --no-cache-dir uv==0.13.9 && uv pip install --system --no-cache -r requirements.txt
COPY src ./src
COPY include ./include
COPY config ./config
RUN uv pip install --system --no-cache --no-deps -e . && useradd --uid 50000 --home-dir /opt/airflow airflow \
    && mkdir -p /opt/airflow /opt/rostering/var && chown -R airflow /opt/airflow /opt/rostering/var
COPY dags /opt/airflow/dags
COPY plugins /opt/airflow/plugins
USER airflow
