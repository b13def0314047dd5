-- Runs once, when the Postgres container starts on an empty volume (docker-entrypoint-initdb.d):
-- Dagster's database of this deployment, next to og-pipeline's (POSTGRES_DB=og_pipeline).
CREATE DATABASE og_dagster;
