#!/usr/bin/env bash
# Register this machine as an ephemeral self-hosted GitHub Actions runner for GPU training
# (RUNNER_ROLE=gpu, the default) or as the deploy host's runner (RUNNER_ROLE=deploy).
#
# Usage: GITHUB_URL=https://github.com/ORG/REPO RUNNER_TOKEN=... scripts/runners/register-runner.sh [RUNNER_DIR]
#
# - Labels come from mlops.yaml (runners.gpu, or runners.deploy), the one place train.yml and
#   reconcile.yml read them from.
# - --ephemeral: the runner takes one job and unregisters, so no job inherits another's state;
#   run it under systemd (github-runner.service) to get a fresh registration per job.
# - RUNNER_TOKEN is a short-lived *registration* token (repo/org Settings > Actions > Runners, or
#   `gh api -X POST repos/ORG/REPO/actions/runners/registration-token`), never a personal token.
# - A GPU runner refuses to continue without a working NVIDIA driver unless ALLOW_NO_GPU=1.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo_root="$(cd "${here}/../.." && pwd)"
: "${GITHUB_URL:?set GITHUB_URL to https://github.com/ORG/REPO (or the org URL)}"
: "${RUNNER_TOKEN:?set RUNNER_TOKEN to a registration token (expires after one hour)}"
runner_dir="${1:-${HOME:-/home/runner}/actions-runner}"
role="${RUNNER_ROLE:-gpu}"
case "${role}" in
  gpu|deploy) ;;
  *) echo "register-runner: RUNNER_ROLE=${role} (expected gpu or deploy)" >&2; exit 2;;
esac

labels="$(python3 - "${repo_root}/mlops.yaml" "${role}" <<'PY'
import sys, yaml
runners = yaml.safe_load(open(sys.argv[1]))["runners"]
labels = runners.get(sys.argv[2]) or (["self-hosted", "deploy"] if sys.argv[2] == "deploy" else [])
print(",".join(l for l in labels if l != "self-hosted"))
PY
)"

if [ "${role}" = "gpu" ] && ! "${here}/check-nvidia.sh"; then
  if [ "${ALLOW_NO_GPU:-0}" != "1" ]; then
    echo "register-runner: no usable GPU; set ALLOW_NO_GPU=1 to register a CPU-only runner anyway" >&2
    exit 1
  fi
fi

if [ ! -x "${runner_dir}/config.sh" ]; then
  echo "register-runner: ${runner_dir}/config.sh not found: unpack the actions/runner release there first" >&2
  exit 1
fi

cd "${runner_dir}"
./config.sh --unattended --ephemeral --replace \
  --url "${GITHUB_URL}" --token "${RUNNER_TOKEN}" \
  --name "$(hostname)-${role}" --labels "${labels}" --work _work
echo "register-runner: registered $(hostname)-${role} with labels self-hosted,${labels}"
