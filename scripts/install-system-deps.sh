#!/usr/bin/env bash
# Installs the system packages the tests and the lab use (real Prometheus and Alertmanager),
# when running as root on Debian. Elsewhere it says what is missing; tests that need a
# missing component skip with a message (and fail under CI=true).
set -euo pipefail

packages=(prometheus prometheus-alertmanager)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Debian starts services on install where it can; the lab runs its own instances.
    for service in prometheus prometheus-alertmanager; do
        command -v systemctl >/dev/null 2>&1 && systemctl stop "$service" 2>/dev/null || true
    done
else
    echo "not installed (needs root on Debian): ${missing[*]}; tests that need them will skip" >&2
fi
