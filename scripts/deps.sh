#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install the Debian packages uffdpool needs, only those that are missing.
# Usage: scripts/deps.sh [extra-package...]
set -euo pipefail
want=(cmake make gcc pkg-config liburing-dev libcriterion-dev "$@")
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "uffdpool: installing ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
