#!/usr/bin/env bash
# Checks docker-compose.yml without a Docker engine: `docker-compose config` must
# pass with the required secrets set (to dummy values), with every profile on, and
# must fail, naming the variable, when any required secret is unset. The workers
# must stay scalable (no container name, no host port). The monitoring profile
# (Flower, Prometheus, Grafana) must render on its own, with pinned image tags,
# ports on 127.0.0.1 only and every file it mounts present. The rabbitmq profile
# must start a pinned, health-checked RabbitMQ that the workers, the API and
# Flower use once HEEROS_BROKER_URL names it, while the stack without it keeps
# Redis as its broker.
#
# Installs Debian's docker-compose when it is missing and this runs as root;
# also checks with `docker compose` (the plugin) when that is present.
set -euo pipefail
cd "$(dirname "$0")/.."

COMPOSE_FILE_PATH=docker-compose.yml
REQUIRED=(HEEROS_CLIENT_KEY HEEROS_API_TOKEN)
PROFILES=(--profile sandbox --profile monitoring --profile pools --profile rabbitmq)
RABBITMQ_BROKER_URL=amqp://guest:guest@rabbitmq:5672//

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
  if env "${unset_all[@]}" "${dummies[@]}" "${compose[@]}" --profile monitoring config -q 2>"$output"; then
    echo "ok: $tool --profile monitoring config passes"
  else
    fail "$tool --profile monitoring config fails:"
    cat "$output" >&2
  fi

  for name in "${REQUIRED[@]}"; do
    others=()
    for dummy in "${dummies[@]}"; do
      [ "${dummy%%=*}" = "$name" ] || others+=("$dummy")
    done
    for profiles in "" "${PROFILES[*]}"; do
      read -r -a profile_args <<<"$profiles"
      if env "${unset_all[@]}" "${others[@]}" "${compose[@]}" "${profile_args[@]}" config -q 2>"$output"; then
        fail "$tool ${profiles:+$profiles }config passes although $name is unset"
      elif grep -q "set $name" "$output"; then
        echo "ok: $tool ${profiles:+$profiles }config refuses to run without $name"
      else
        fail "$tool ${profiles:+$profiles }config fails without $name, but its message does not name it:"
        cat "$output" >&2
      fi
    done
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

# The monitoring profile: what it runs, which files it needs, where it listens.
check_monitoring='
import os, re, sys, yaml
services = yaml.safe_load(sys.stdin.read())["services"]
problems = []
for name in ("flower", "prometheus", "grafana"):
    spec = services.get(name)
    if spec is None:
        problems.append(f"no {name} service")
        continue
    if "monitoring" not in spec.get("profiles", []):
        problems.append(f"{name} is not in the monitoring profile")
    image = spec.get("image", "")
    if not re.search(r":[^/:]+$", image) or image.endswith(":latest"):
        problems.append(f"{name}: image {image!r} is not pinned to a version tag")
    for port in spec.get("ports", []):
        text = port if isinstance(port, str) else str(port.get("host_ip", ""))
        if not str(text).startswith("127.0.0.1"):
            problems.append(f"{name}: port {port} is published beyond 127.0.0.1")
    for volume in spec.get("volumes", []):
        source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
        if source.startswith("/") and not os.path.isfile(source):
            problems.append(f"{name}: mounts {source}, which is not a file")
if problems:
    sys.exit("; ".join(problems))
'
if ! python3 -c 'import yaml' >/dev/null 2>&1; then
  fail "python3 with PyYAML is needed to check the monitoring profile (apt-get install python3-yaml)"
elif ! rendered=$(env "${unset_all[@]}" "${dummies[@]}" docker-compose --env-file "$empty_env" \
  -f "$COMPOSE_FILE_PATH" --profile monitoring config 2>"$output"); then
  fail "docker-compose --profile monitoring config cannot render the file"
elif python3 -c "$check_monitoring" <<<"$rendered"; then
  echo "ok: the monitoring profile runs pinned images on 127.0.0.1 with every file it mounts"
else
  failures=$((failures + 1))
fi

# The rabbitmq profile: RabbitMQ itself, and who uses it. Without HEEROS_BROKER_URL
# every service stays on Redis (the variable is passed on unset); with it, every
# Celery client (workers, API, Flower) gets it, and only the profile starts RabbitMQ.
check_rabbitmq='
import re, sys, yaml
mode, url = sys.argv[1], sys.argv[2]
services = yaml.safe_load(sys.stdin.read())["services"]
problems = []
clients = ("worker", "worker-poll", "api", "flower")
for name in clients:
    env = services.get(name, {}).get("environment", {})
    value = env.get("HEEROS_BROKER_URL")
    if name not in services:
        problems.append(f"no {name} service")
    elif "HEEROS_BROKER_URL" not in env:
        problems.append(f"{name} is not given HEEROS_BROKER_URL")
    elif mode == "default" and value not in (None, ""):
        problems.append(f"{name}: HEEROS_BROKER_URL is {value!r} by default")
    elif mode == "rabbitmq" and value != url:
        problems.append(f"{name} does not take HEEROS_BROKER_URL from the environment")
for name, spec in services.items():
    if "rabbitmq" in spec.get("profiles", []):
        continue
    depends = spec.get("depends_on", {})
    if "rabbitmq" in depends:
        problems.append(f"{name} depends on rabbitmq outside the rabbitmq profile")
    if mode == "default" and re.search(r"amqps?://", yaml.safe_dump(spec)):
        problems.append(f"{name} names an AMQP broker by default")
rabbit = services.get("rabbitmq")
if rabbit is None:
    problems.append("no rabbitmq service")
else:
    if rabbit.get("profiles") != ["rabbitmq"]:
        problems.append("rabbitmq is not in the rabbitmq profile alone")
    image = rabbit.get("image", "")
    if not re.fullmatch(r"rabbitmq:\d+\.\d+\.\d+-management", image):
        problems.append(f"rabbitmq: image {image!r} is not pinned to a version tag")
    if "rabbitmq-diagnostics" not in " ".join(rabbit.get("healthcheck", {}).get("test", [])):
        problems.append("rabbitmq has no rabbitmq-diagnostics health check")
    if not rabbit.get("hostname"):
        problems.append("rabbitmq has no fixed hostname (its data lives under its node name)")
    for port in rabbit.get("ports", []):
        text = port if isinstance(port, str) else str(port.get("host_ip", ""))
        if not str(text).startswith("127.0.0.1"):
            problems.append(f"rabbitmq: port {port} is published beyond 127.0.0.1")
if problems:
    sys.exit("; ".join(problems))
'
if ! python3 -c 'import yaml' >/dev/null 2>&1; then
  fail "python3 with PyYAML is needed to check the rabbitmq profile (apt-get install python3-yaml)"
else
  for mode in default rabbitmq; do
    profile_args=()
    broker=()
    if [ "$mode" = rabbitmq ]; then
      profile_args=(--profile rabbitmq)
      broker=("HEEROS_BROKER_URL=$RABBITMQ_BROKER_URL")
    fi
    if ! rendered=$(env "${unset_all[@]}" -u HEEROS_BROKER_URL "${dummies[@]}" "${broker[@]}" \
      docker-compose --env-file "$empty_env" -f "$COMPOSE_FILE_PATH" "${profile_args[@]}" \
      config 2>"$output"); then
      fail "docker-compose ${profile_args[*]:+${profile_args[*]} }config cannot render the file:"
      cat "$output" >&2
    elif python3 -c "$check_rabbitmq" "$mode" "$RABBITMQ_BROKER_URL" <<<"$rendered"; then
      if [ "$mode" = default ]; then
        echo "ok: without HEEROS_BROKER_URL every service keeps Redis as its broker"
      else
        echo "ok: the rabbitmq profile runs a pinned RabbitMQ that the workers, the API and Flower use"
      fi
    else
      failures=$((failures + 1))
    fi
  done
fi

if [ "$failures" -ne 0 ]; then
  echo "$failures compose check(s) failed" >&2
  exit 1
fi
echo "docker-compose.yml: all checks passed"
