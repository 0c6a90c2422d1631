# llmmon on Apache Airflow: the official image plus the llmmon package.
# Built by docker-compose.yml (x-airflow-common.build). Keep the tag in step with
# AIRFLOW_VERSION in docker-compose.yml and with the apache-airflow pin in pyproject.toml.
FROM apache/airflow:3.3.2-python3.11

# The image's default user is "airflow"; install into its user site like the docker-stack docs show.
USER airflow
WORKDIR /opt/llmmon
COPY --chown=airflow:0 pyproject.toml README.md ./
COPY --chown=airflow:0 llmmon ./llmmon
# Pinning apache-airflow to the image's own version stops pip from up/downgrading Airflow while
# it resolves llmmon's dependencies (numpy<2 for whylogs, etc.). No constraints file: llmmon's pins
# (numpy<2, pandas<3, pyarrow<22) are narrower than Airflow's constraints and win on purpose.
# The `celery` extra pins a celery the provider works with (5.7.0 breaks it).
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" "/opt/llmmon[celery]" \
    && python -c "import llmmon, airflow; print('llmmon', llmmon.__name__, 'airflow', airflow.__version__)"
WORKDIR /opt/airflow
