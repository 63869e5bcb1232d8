#!/usr/bin/env bash
# Checks docker-compose.yml without a Docker engine: `docker-compose config` must
# pass with the required secrets set (to dummy values), with every profile on, and
# must fail, naming the variable, when any required secret is unset. The workers
# must stay scalable (no container name, no host port).
#
# Installs Debian's docker-compose when it is missing and this runs as root;
# also checks with `docker compose` (the plugin) when that is present.
set -euo pipefail
cd "$(dirname "$0")/.."

COMPOSE_FILE_PATH=docker-compose.yml
REQUIRED=(HEEROS_CLIENT_KEY HEEROS_API_TOKEN)
PROFILES=(--profile sandbox --profile monitoring --profile pools)

if ! command -v docker-compose >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing: docker-compose"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
  else
    echo "missing: docker-compose — install it (e.g. sudo apt-get install docker-compose) and run again" >&2
    exit 1
  fi
fi

tools=("docker-compose")
if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
  tools+=("docker compose")
fi

# An empty env file, so that a developer's .env cannot stand in for a missing secret.
empty_env=$(mktemp)
output=$(mktemp)
trap 'rm -f "$empty_env" "$output"' EXIT

dummies=()
unset_all=()
for name in "${REQUIRED[@]}"; do
  dummies+=("$name=dummy-$name")
  unset_all+=(-u "$name")
done

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

for tool in "${tools[@]}"; do
  read -r -a cmd <<<"$tool"
  compose=("${cmd[@]}" --env-file "$empty_env" -f "$COMPOSE_FILE_PATH")

  if env "${unset_all[@]}" "${dummies[@]}" "${compose[@]}" config -q 2>"$output" \
    && env "${unset_all[@]}" "${dummies[@]}" "${compose[@]}" "${PROFILES[@]}" config -q 2>"$output"; then
    echo "ok: $tool config passes with the required secrets set"
  else
    fail "$tool config fails with every required secret set:"
    cat "$output" >&2
  fi

  for name in "${REQUIRED[@]}"; do
    others=()
    for dummy in "${dummies[@]}"; do
      [ "${dummy%%=*}" = "$name" ] || others+=("$dummy")
    done
    if env "${unset_all[@]}" "${others[@]}" "${compose[@]}" config -q 2>"$output"; then
      fail "$tool config passes although $name is unset"
    elif grep -q "set $name" "$output"; then
      echo "ok: $tool config refuses to run without $name"
    else
      fail "$tool config fails without $name, but its message does not name it:"
      cat "$output" >&2
    fi
  done
done

# Workers are scaled with --scale worker=N: every copy must be alike.
check_scalable='
import sys, yaml
services = yaml.safe_load(sys.stdin.read())["services"]
workers = {name: spec for name, spec in services.items() if name.startswith("worker")}
fixed = [f"{name} has {key}" for name, spec in workers.items()
         for key in ("container_name", "ports", "hostname") if key in spec]
if "worker" not in workers or fixed:
    sys.exit("; ".join(fixed or ["no worker service"]) + ": workers must be scalable")
'
if ! python3 -c 'import yaml' >/dev/null 2>&1; then
  fail "python3 with PyYAML is needed to check the worker service (apt-get install python3-yaml)"
elif ! rendered=$(env "${unset_all[@]}" "${dummies[@]}" docker-compose --env-file "$empty_env" \
  -f "$COMPOSE_FILE_PATH" "${PROFILES[@]}" config 2>"$output"); then
  fail "docker-compose config cannot render the file"
elif python3 -c "$check_scalable" <<<"$rendered"; then
  echo "ok: the worker services can be scaled"
else
  failures=$((failures + 1))
fi

if [ "$failures" -ne 0 ]; then
  echo "$failures compose check(s) failed" >&2
  exit 1
fi
echo "docker-compose.yml: all checks passed"
