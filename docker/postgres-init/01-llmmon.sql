-- Runs once, when the postgres volume is first initialised (docker-entrypoint-initdb.d).
-- The Airflow metadata DB ("airflow") is created by POSTGRES_DB; llmmon's warehouse gets its own
-- database, owned by the same role, so llmmon tables never mix with Airflow's.
-- The llmmon tables themselves are created by llmmon (sql/ holds the DDL).
SELECT 'CREATE DATABASE llmmon OWNER ' || quote_ident(current_user)
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'llmmon')\gexec
