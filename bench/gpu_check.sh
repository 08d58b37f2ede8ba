#!/usr/bin/env bash
# The device check of a CUDA machine, in one call: bench.seed_step (5 seeds batched against 1,
# roberta-large architecture, bf16) and one epoch of Table 2's RTE config (bench.cuda_epoch), both on a
# random-init roberta-large (such machines have no internet). Results go to $OUT (else bench/results):
# seed_step.md/.json, cuda_epoch.md/.json and gpu_check.log. Each step has its own time limit so that a
# slow one still leaves the other's results. Run from the repository root; needs torch with CUDA,
# transformers, tokenizers, safetensors, datasets and pydantic (carry the last two as wheels if absent).
# The run of 2026-12-04 (bench/results/gpu_check.log) carried, for Python 3.12: pydantic 2.14.4, pydantic_core
# 2.50.5, annotated_types 0.8.0, typing_inspection 0.4.5, typing_extensions 4.16.0, datasets 5.2.0, dill 0.4.1,
# multiprocess 0.70.19 and transformers 5.23.0 (the image's 5.17.0 also passes the prompt, model and train
# unit tests here, with huggingface_hub 1.33.0).
source "$(dirname "$0")/_gpu_env.sh" gpu_check.log  # sets $out
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
python3 -c "import torch, transformers, datasets, pydantic, pyarrow; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'| transformers', transformers.__version__, '| datasets', datasets.__version__, '| pyarrow', pyarrow.__version__)"
t0=$SECONDS
timeout "${SEED_STEP_LIMIT_S:-150}" python3 -m bench.seed_step --random-init --out "$out/seed_step.md"
echo "bench.seed_step: rc=$? in $((SECONDS - t0))s"
t0=$SECONDS
timeout "${EPOCH_LIMIT_S:-270}" python3 -m bench.cuda_epoch --random-init /tmp/roberta-large-random --out "$out/cuda_epoch.md"
echo "bench.cuda_epoch: rc=$? in $((SECONDS - t0))s"
