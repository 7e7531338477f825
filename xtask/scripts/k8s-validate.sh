#!/usr/bin/env bash
# Offline schema validation for tests/tests/deploy.rs: PyPI's kubernetes-validate
# (it carries the Kubernetes schemas) and jsonschema + PyYAML (for the Security
# Profiles Operator's CRD), in a virtual environment of their own.
# Checks its own result: the DaemonSet and the merge CronJob in deploy/ validate.
set -euo pipefail
say() { printf '[observer setup: kubernetes-validate] %s\n' "$*" >&2; }
fail() { say "FAILED at step '$1': $2"; exit 1; }
venv=/var/lib/observer-setup/venv
here=$(dirname "$(readlink -f "$0")")
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    say "installing Debian's python3-venv"
    { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv; } >&2 ||
      fail "apt-get install python3-venv" "see the apt output above"
  fi
  say "making $venv and installing kubernetes-validate (PyPI)"
  python3 -m venv "$venv" || fail "python3 -m venv" "could not make $venv"
  "$venv/bin/pip" install -q kubernetes-validate jsonschema pyyaml >&2 || fail "pip install kubernetes-validate" "pip failed"
fi
for manifest in observer.yaml observer-merge.yaml; do
  out=$("$venv/bin/kubernetes-validate" --strict "$here/../../deploy/$manifest" 2>&1) || fail "validate deploy/$manifest" "$out"
done
say "checked: kubernetes-validate $("$venv/bin/kubernetes-validate" --version) validates deploy/observer.yaml and deploy/observer-merge.yaml"
