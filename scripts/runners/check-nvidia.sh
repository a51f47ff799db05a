#!/usr/bin/env bash
# Is this machine ready to train on its GPU? Checks the NVIDIA driver and lists the GPUs.
# Exit 0: driver and at least one GPU; 1: no usable GPU (training falls back to the CPU);
# 2: the driver is installed but does not answer (reboot or reinstall it).
set -euo pipefail

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "check-nvidia: no nvidia-smi on PATH: no NVIDIA driver here (training will use the CPU)" >&2
  exit 1
fi
if ! out=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1); then
  echo "check-nvidia: nvidia-smi failed: ${out}" >&2
  exit 2
fi
if [ -z "${out}" ]; then
  echo "check-nvidia: the driver answers but lists no GPU (training will use the CPU)" >&2
  exit 1
fi
echo "check-nvidia: GPUs ready:"
echo "${out}" | sed 's/^/  /'
