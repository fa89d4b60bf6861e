#!/usr/bin/env bash
# Installs Boomerang into a virtualenv (default ./.venv) and writes a starter
# boomerang.yaml when there is none. On a fresh Debian/Ubuntu, run as root or
# with sudo available: it installs python3-venv when it is missing.
#
#   ./scripts/install.sh && .venv/bin/boomerang run -c boomerang.yaml
#
# BOOMERANG_VENV=/opt/boomerang ./scripts/install.sh   installs elsewhere.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv=${BOOMERANG_VENV:-.venv}
python=${PYTHON:-python3}
export DEBIAN_FRONTEND=noninteractive PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf 'install.sh: %s\n' "$*"; }

if ! command -v "$python" >/dev/null || ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
  packages="python3 python3-venv"
  if [ "$(id -u)" = 0 ]; then
    say "installing $packages"
    apt-get update -qq && apt-get install -y -qq --no-install-recommends $packages >/dev/null
  elif command -v sudo >/dev/null; then
    say "installing $packages (sudo)"
    sudo apt-get update -qq && sudo apt-get install -y -qq --no-install-recommends $packages >/dev/null
  else
    say "Python's venv module is missing; run as root: apt-get install -y $packages"
    exit 1
  fi
fi
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { say "Python 3.11 or newer is needed ($("$python" -V 2>&1) found)"; exit 1; }

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
say "installing Boomerang into $venv"
"$venv/bin/python" -m pip install -q .
if [ ! -e boomerang.yaml ]; then
  "$venv/bin/boomerang" init -o boomerang.yaml
fi
say "done: $("$venv/bin/boomerang" --version)"
say "run it with: $venv/bin/boomerang run -c boomerang.yaml"
