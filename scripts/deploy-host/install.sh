#!/usr/bin/env bash
# Install the pull-based reconciler on a deploy host: mlops-reconcile.service (systemd) running
# `mlops reconcile --watch` in a checkout of the repository, as its own user.
#
#   sudo scripts/deploy-host/install.sh /opt/mlops/repo
#
# The checkout must exist (git clone it first, as any user); it is handed to the `mlops` user.
# Re-running converges: the user, tool set, unit and (if absent) environment file are made
# once; an existing /etc/mlops/reconcile.env is never overwritten. Paths can be moved for
# packaging and tests: SYSTEMD_DIR, ETC_DIR, STATE_DIR. WITH_WEBHOOK=1 also installs
# mlops-webhook.service (`mlops webhook`: registry events that open promotions), enabled once
# /etc/mlops/webhook.env has its secret.
set -euo pipefail

fail() { echo "error: $*" >&2; exit 2; }

repo=${1:-}
[ -n "$repo" ] || fail "usage: install.sh <repository checkout> (e.g. /opt/mlops/repo)"
repo=$(cd "$repo" 2>/dev/null && pwd) || fail "$1: no such directory (expected a clone of the repository)"
[ -f "$repo/mlops.yaml" ] || fail "$repo: no mlops.yaml (expected a clone of the repository)"
git -C "$repo" rev-parse --git-dir >/dev/null 2>&1 || fail "$repo: not a git checkout (expected git clone)"
git -C "$repo" remote get-url origin >/dev/null 2>&1 || fail "$repo: no remote origin (the reconciler pulls from it)"

systemd_dir=${SYSTEMD_DIR:-/etc/systemd/system}
etc_dir=${ETC_DIR:-/etc/mlops}
state_dir=${STATE_DIR:-/var/lib/mlops}
here=$(cd "$(dirname "$0")" && pwd)

if ! id mlops >/dev/null 2>&1; then
  useradd --system --home-dir "$state_dir" --shell /usr/sbin/nologin mlops
fi
mkdir -p "$state_dir" "$etc_dir"
chown -R mlops:mlops "$repo" "$state_dir"

# the tool set, as the service's user (re-runs only when constraints.txt changes)
runuser -u mlops -- make -C "$repo" -s install

# install_unit NAME WHAT: /etc/mlops/NAME.env from NAME.env here (once, mode 0600: an admin's
# edits are never overwritten; WHAT says what to set in it) and mlops-NAME.service, filled in.
install_unit() {
  local env_file="$etc_dir/$1.env"
  if [ ! -f "$env_file" ]; then
    sed "s|^MLOPS_STATE_DIR=.*|MLOPS_STATE_DIR=$state_dir|" "$here/$1.env" > "$env_file"
    chmod 0600 "$env_file"
    echo "wrote $env_file: set $2 there"
  fi
  sed -e "s|@REPO@|$repo|g" -e "s|@ENV_FILE@|$env_file|g" -e "s|@STATE@|$state_dir|g" \
    "$here/mlops-$1.service" > "$systemd_dir/mlops-$1.service"
  systemctl daemon-reload
}

install_unit reconcile "MLFLOW_TRACKING_URI (and credentials)"
systemctl enable --now mlops-reconcile.service
echo "installed mlops-reconcile.service; health: curl -s http://127.0.0.1:\${MLOPS_HEALTH_PORT:-9464}/healthz"

if [ "${WITH_WEBHOOK:-}" = 1 ]; then
  install_unit webhook "MLOPS_WEBHOOK_SECRET, the registry's credentials and GH_TOKEN"
  if grep -q '^MLOPS_WEBHOOK_SECRET=.\{16,\}' "$etc_dir/webhook.env"; then
    systemctl enable --now mlops-webhook.service
    echo "installed mlops-webhook.service; health: curl -s http://127.0.0.1:\${MLOPS_WEBHOOK_PORT:-8790}/healthz"
  else
    echo "installed mlops-webhook.service, not started: set MLOPS_WEBHOOK_SECRET in $etc_dir/webhook.env, then systemctl enable --now mlops-webhook"
  fi
fi
