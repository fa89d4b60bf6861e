#!/usr/bin/env bash
# Boomerang's one test command: installs what the tests need, then runs the
# linters, the type checker and the whole test suite.
#
#   ./scripts/test.sh            (from anywhere; works on a fresh Debian/Ubuntu)
#   ./scripts/test.sh -k sipp    (extra arguments go to pytest)
#
# As root it installs the missing Debian packages (SIPp, baresip, Kamailio,
# rtpengine, PostgreSQL, sox, espeak-ng) with apt-get; otherwise it prints the apt-get command to run
# and the tests that need a missing tool are skipped. Python packages go into
# the active virtualenv, or into the current Python when pip may write there,
# or else into ./.venv (created here; Debian's own Python is "externally
# managed", PEP 668). Exits non-zero when anything fails.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
repo=$(pwd)
start_s=$SECONDS
export DEBIAN_FRONTEND=noninteractive
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
export PYTHONDONTWRITEBYTECODE=1

section() { printf '\n==== %s ====\n' "$*"; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 2; }

# ---------------------------------------------------------------- tools ---
section "System tools"
# command -> Debian package
declare -A package_of=(
  [sipp]=sip-tester
  [baresip]=baresip
  [kamailio]=kamailio
  [sox]=sox
  [espeak-ng]=espeak-ng
  [timeout]=coreutils
  [rtpengine]=rtpengine-daemon
)
python=${PYTHON:-python3}
if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
  python=$VIRTUAL_ENV/bin/python
fi
command -v "$python" >/dev/null || package_of[python3]=python3

missing=()
for tool in "${!package_of[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${package_of[$tool]}")
done
# The store tests also run on a throw-away PostgreSQL cluster; Debian keeps
# the server binaries off PATH, under /usr/lib/postgresql/VERSION/bin.
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql)

# Decide where Python packages go; a new ./.venv needs python3-venv.
use_venv=0
if [ -z "${VIRTUAL_ENV:-}" ] && command -v "$python" >/dev/null; then
  if [ -x "$repo/.venv/bin/python" ]; then
    use_venv=1
  elif ! "$python" - <<'EOF' 2>/dev/null
import os, sys, sysconfig
managed = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
import pip  # noqa: F401  (raises when pip is missing)
writable = os.access(sysconfig.get_path("purelib"), os.W_OK)
sys.exit(1 if managed or not writable else 0)
EOF
  then
    use_venv=1
    "$python" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  fi
fi

if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing: ${missing[*]}"
    log=$(mktemp /tmp/boomerang-apt.XXXXXX)
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
             -o Dpkg::Use-Pty=0 "${missing[@]}"; } >"$log" 2>&1; then
      tail -n 30 "$log"
      die "apt-get install failed (full log: $log)"
    fi
    rm -f "$log"
  elif command -v apt-get >/dev/null; then
    echo "MISSING Debian packages; run this, then run the tests again:"
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
    echo "(continuing: tests that need a missing tool are skipped)"
  else
    echo "MISSING tools (no apt-get here; install by hand): ${missing[*]}"
  fi
fi
command -v "$python" >/dev/null || die "no $python; install Python 3.11 or newer"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "Python 3.11 or newer is needed; $python is $("$python" -V 2>&1)"
for tool in sipp baresip kamailio sox espeak-ng; do
  printf '  %-10s %s\n' "$tool" "$(command -v "$tool" || echo 'MISSING (its tests will skip)')"
done

# --------------------------------------------------------------- python ---
section "Python packages"
if [ $use_venv = 1 ]; then
  if [ ! -x "$repo/.venv/bin/python" ]; then
    echo "creating ./.venv (this Python is externally managed or read-only)"
    "$python" -m venv "$repo/.venv" || die "could not create ./.venv"
  fi
  python=$repo/.venv/bin/python
  export VIRTUAL_ENV=$repo/.venv
fi
# console scripts (boomerang) next to this Python come first on PATH
PATH=$(dirname "$python"):$PATH
export PATH
echo "python: $python ($("$python" -V 2>&1))"
# the optional G.722 codec too (a binary wheel), so its tests run; without it
# they are skipped
if ! "$python" -m pip install -q -e '.[test,g722]'; then
  echo "WARNING: could not install the g722 extra; installing '.[test]' (G.722 tests skip)"
  "$python" -m pip install -q -e '.[test]' || die "pip install -e '.[test]' failed"
fi

# ---------------------------------------------------------------- checks ---
failed=()
paths=()
for p in boomerang tests bench; do [ -d "$p" ] && paths+=("$p"); done

section "ruff check ${paths[*]}"
"$python" -m ruff check "${paths[@]}" || failed+=(ruff)

section "mypy boomerang (strict on boomerang/sip)"
"$python" -m mypy boomerang || failed+=(mypy)

section "pytest (whole suite)"
timeout --kill-after=30 1200 "$python" -m pytest -q -p no:cacheprovider \
  --timeout=120 --durations=15 "$@"
rc=$?
case $rc in
  0) ;;
  5) echo "pytest: NO TESTS WERE COLLECTED (exit 5): counted as a failure"; failed+=(pytest) ;;
  124|137) echo "pytest: killed by the 20-minute limit"; failed+=(pytest) ;;
  *) failed+=(pytest) ;;
esac

section "Summary"
echo "took $((SECONDS - start_s)) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "ALL PASSED"
