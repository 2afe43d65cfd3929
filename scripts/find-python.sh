#!/usr/bin/env bash
# Prints the path of a Python interpreter of the version given (3.12, 3.13, ...), or fails
# with a message on standard error saying where it looked.
#
#   scripts/find-python.sh 3.12
#
# Looks, in this order, at pythonX.Y on PATH, then at pyenv's versions directory
# ($PYENV_ROOT/versions/X.Y.*, the newest patch release first; PYENV_ROOT defaults to
# ~/.pyenv). A candidate counts only if it runs and reports that version: a pyenv shim of a
# version that is not selected fails to run, and is skipped.
set -euo pipefail

want=${1:?usage: find-python.sh X.Y}
if ! [[ $want =~ ^3\.[0-9]+$ ]]; then
  echo "find-python: '$want' is not a Python version of the form 3.N" >&2
  exit 2
fi

reports() { # interpreter: true if it runs and is Python $want
  [ -x "$1" ] && [ "$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$want" ]
}

candidates=()
if found=$(command -v "python$want" 2>/dev/null); then candidates+=("$found"); fi
pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
while IFS= read -r dir; do
  candidates+=("$dir/bin/python$want")
done < <(ls -d "$pyenv_root/versions/$want".* 2>/dev/null | sort -rV)

for python in "${candidates[@]}"; do
  if reports "$python"; then
    echo "$python"
    exit 0
  fi
done
echo "find-python: no Python $want: not python$want on PATH, nor in $pyenv_root/versions/$want.*" >&2
exit 1
