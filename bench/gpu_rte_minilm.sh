#!/usr/bin/env bash
# Table 2's RTE on MiniLM in a learning regime, on a lent GPU machine (no internet, no Ray, no MLflow):
# experiments/gpu/table2-rte-minilm.yaml and its fine-tuning row, trained in-process by bench.gpu_grid;
# then bench.seed_step --profile (GPU kernel time of the 1- and 5-seed steps). MiniLM's weights travel as
# fp16 (.gpucarry/minilm/model-fp16.safetensors: the fp32 file is over the upload limit) and are widened
# to fp32 here (hidden states then differ from the original by < 1%: 0.0028 at a mean magnitude of 0.32).
# Results go to $OUT (else bench/results); each step has its own time limit.
source "$(dirname "$0")/_gpu_env.sh" gpu_rte_minilm.log  # sets $out
python3 - <<'PY'
import shutil
from safetensors.torch import load_file, save_file
src, dst = ".gpucarry/minilm", "/tmp/minilm"
shutil.rmtree(dst, ignore_errors=True)
shutil.copytree(src, dst, ignore=shutil.ignore_patterns("model-fp16.safetensors"))
half = load_file(f"{src}/model-fp16.safetensors")
save_file({k: v.float() if v.is_floating_point() else v for k, v in half.items()}, f"{dst}/model.safetensors",
          metadata={"format": "pt"})
print(f"MiniLM widened to fp32 in {dst}")
PY
t0=$SECONDS
timeout "${GRID_LIMIT_S:-440}" python3 -m bench.gpu_grid experiments/gpu/table2-rte-minilm.yaml \
    experiments/gpu/table2-rte-minilm-finetune.yaml --set backbone.name=/tmp/minilm --out "$out/table2_rte_minilm.json"
echo "bench.gpu_grid: rc=$? in $((SECONDS - t0))s"
python3 -m bench.gpu_grid --report "$out/table2_rte_minilm.json" --out "$out/table2_rte_minilm.md"
t0=$SECONDS
timeout "${PROFILE_LIMIT_S:-90}" python3 -m bench.seed_step --random-init --profile --rounds 10 \
    --methods "Prompt Tuning" "Prefix Tuning" --out "$out/seed_step_profile.md"
echo "bench.seed_step --profile: rc=$? in $((SECONDS - t0))s"
