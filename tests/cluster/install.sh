#!/usr/bin/env bash
# Install a single-node SLURM from Debian's packages: slurmctld, slurmd and slurmdbd 22.05,
# munge for authentication and MariaDB for slurmdbd's accounting database. Run as root.
# Installing starts no daemon: Debian's service scripts are blocked by policy-rc.d on machines
# without systemd, and start.sh runs each daemon by hand.
set -euo pipefail

packages=(slurmctld slurmd slurmdbd slurm-client munge mariadb-server)

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "install.sh: SLURM packages already installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: installing ${missing[*]} needs root; run it as root or with sudo" >&2
    exit 1
fi
echo "install.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
