# Sourced by the device-check scripts (bench/gpu_*.sh) with the log's file name: results under $OUT (else
# bench/results), offline Hugging Face, unbuffered Python, and everything printed also kept in that log.
set -uo pipefail
out=${OUT:-bench/results}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
exec > >(tee "$out/$1") 2>&1
date -u
