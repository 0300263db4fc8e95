#!/usr/bin/env bash
# Install the Debian packages agentgym needs, only those that are missing.
# Each line of debian-packages.txt is "<command that must exist> <Debian package providing it>".
set -euo pipefail
missing=()
while read -r command package; do
  case "$command" in ""|\#*) continue ;; esac
  command -v "$command" >/dev/null 2>&1 || missing+=("$package")
done < "$(dirname "$0")/../debian-packages.txt"
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing Debian packages: ${missing[*]}"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
