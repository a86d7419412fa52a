#!/usr/bin/env bash
# Starts Debian's PostgreSQL for the test suite (installed by
# `scripts/setup.sh --tests`) and prints a URL for a role that may create
# databases; each test creates and drops its own database. Idempotent.
set -euo pipefail
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
as_postgres() { as_root runuser -u postgres -- "$@"; }

version=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main"' | grep -q .; then
  as_root pg_createcluster "$version" main >/dev/null
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" && $4=="online"' | grep -q .; then
  as_root pg_ctlcluster "$version" main start
fi
port=$(pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $3}')
as_postgres psql -qAt -p "$port" -c "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'streamgate_test') THEN
    CREATE ROLE streamgate_test LOGIN CREATEDB PASSWORD 'streamgate_test';
  END IF; END \$\$;" >/dev/null
echo "postgres://streamgate_test:streamgate_test@127.0.0.1:$port/postgres"
