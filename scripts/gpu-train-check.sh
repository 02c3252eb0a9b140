#!/usr/bin/env bash
# GPU training checks and measurements in one device call (device time is scarce). Steps, in the
# order given on the command line:
#   conformance   every CUDA op (forward and backward) against the CPU op (--quick sizes)
#   parity        forward --device cuda against the transformers fixtures (f32, bf16)
#   grad-parity   grad --device cuda against the fixtures' float64 gradients (f32, bf16)
#   decode        batch-1 decode of hybrid-8b at 4K (the inference speed check)
#   compare       300 steps of hybrid-small on the default corpus, bf16 on the GPU (the CPU run
#                 is made on the CPU with the same options: bench/train_compare.sh)
#   resume        kill -9 in the middle of a GPU run, --resume, and the losses compared
#   train-bench   mambalm bench --train at the peer's shapes, then the PyTorch peer
#   train-ab      the training step beside BASELINE=PATH (another mambalm binary), alternated
#   kernels       SSD and attention kernels with their PyTorch / mamba_ssm peers
# Here:  bash scripts/gpu-bundle.sh build-cuda build-gpu mambalm mambalm_cuda_conformance \
#          mambalm_bench_ssd mambalm_bench_attention
# There (carry build-gpu, and .device-data with the compare dataset and build-peer):
#        bash scripts/gpu-train-check.sh conformance parity grad-parity ...
set -uo pipefail
cd "$(dirname "$0")/.."
# The bundle may travel compressed (the device call carries 64 MiB at most).
[ -d build-gpu ] || [ ! -f .device-data/bundle.tar.xz ] || python3 -c "import tarfile; tarfile.open('.device-data/bundle.tar.xz').extractall('.')"
source scripts/gpu-env.sh build-gpu
out=${OUT:-/tmp/gpu-train-check}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader || true
status=0
step() { echo "== $1 ($(date +%T))"; }
for what in "$@"; do
  case "$what" in
    conformance)
      step conformance
      timeout "${CONFORMANCE_TIMEOUT:-600}" mambalm_cuda_conformance --quick > "$out/conformance.txt" 2>&1; rc=$?
      tail -n 400 "$out/conformance.txt" | grep -E "^\| [a-z_0-9]+ \|" | awk -F"|" '{print $2}' | sort | uniq -c | head -40
      grep -E "\*\*NO\*\*|cases," "$out/conformance.txt"; status=$((status | rc)) ;;
    parity)
      step parity
      mkdir -p /tmp/parity
      timeout "${STEP_TIMEOUT:-300}" python3 tests/golden/check_cuda_parity.py "$(command -v mambalm)" tests/golden/fixtures /tmp/parity 2>&1 | tee "$out/parity.txt"
      status=$((status | PIPESTATUS[0])) ;;
    grad-parity)
      step grad-parity
      mkdir -p /tmp/gradparity
      timeout "${STEP_TIMEOUT:-300}" python3 tests/golden/check_cuda_grad_parity.py "$(command -v mambalm)" tests/golden/fixtures /tmp/gradparity 2>&1 |
        tee "$out/grad_parity.txt"
      status=$((status | PIPESTATUS[0])) ;;
    decode)
      step decode
      mambalm bench --device cuda --preset hybrid-8b --contexts 4K --batches 1 --no-max-batch --gen-len 128 2>&1 |
        tee "$out/decode.txt" | grep -E "decode|ms" | head -20 ;;
    compare)
      step compare
      d=.device-data/cmp
      mambalm init --arch hybrid --preset hybrid-small --tokenizer $d/sp4096.model --seed 1 --out /tmp/cmp-model >/dev/null
      rm -rf /tmp/cmp-run
      timeout "${STEP_TIMEOUT:-300}" mambalm train --model /tmp/cmp-model --data $d/corpus --out /tmp/cmp-run --seq-len 128 --micro-batch 8 --steps 300 \
        --lr 2e-3 --warmup 20 --val-interval 50 --log-interval 10 --checkpoint-interval 0 --device cuda --dtype bf16 \
        > "$out/train_gpu.log" 2>&1; rc=$?
      cp /tmp/cmp-run/metrics.jsonl "$out/metrics_gpu.jsonl" 2>/dev/null
      tail -n 4 "$out/train_gpu.log"; status=$((status | rc)) ;;
    resume)
      step resume
      d=.device-data/cmp
      [ -d /tmp/cmp-model ] || mambalm init --arch hybrid --preset hybrid-small --tokenizer $d/sp4096.model --seed 1 --out /tmp/cmp-model >/dev/null
      args=(--model /tmp/cmp-model --data $d/corpus --seq-len 128 --micro-batch 8 --steps 300 --lr 2e-3 --warmup 5
            --val-interval 0 --log-interval 1 --checkpoint-interval 100 --device cuda)
      # The GEMM algorithms are timed (the default), so two fresh runs may choose differently: the
      # uninterrupted run repeats the killed run's choices (--gemm-algos FILE), and the resume
      # must pin them by itself (train/gemm_choices.h).
      rm -rf /tmp/r-full /tmp/r-kill
      mambalm train "${args[@]}" --out /tmp/r-kill > "$out/resume_kill.log" 2>&1 &
      pid=$!
      while [ ! -d /tmp/r-kill/checkpoints/step-00000100 ] && kill -0 $pid 2>/dev/null; do sleep 0.05; done
      kill -9 $pid; wait $pid 2>/dev/null
      echo "killed after $(wc -l < /tmp/r-kill/metrics.jsonl) logged steps" | tee -a "$out/resume_kill.log"
      cp /tmp/r-kill/gemm_choices.txt /tmp/choices-at-kill.txt
      mambalm train "${args[@]}" --out /tmp/r-kill --resume >> "$out/resume_kill.log" 2>&1
      mambalm train "${args[@]}" --gemm-algos /tmp/choices-at-kill.txt --out /tmp/r-full > "$out/resume_full.log" 2>&1
      echo "GEMM shapes whose timed choice was not the heuristic's first: $(awk 'NR > 2 && $3 !~ /^0\// {n++} END {print n + 0}' /tmp/choices-at-kill.txt) of $(($(wc -l < /tmp/choices-at-kill.txt) - 2))"
      python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
def losses(p):
    return {r["step"]: r["loss"] for r in map(json.loads, open(p))}
a, b = losses("/tmp/r-full/metrics.jsonl"), losses("/tmp/r-kill/metrics.jsonl")
same = [s for s in a if s in b and a[s] == b[s]]
diff = [s for s in a if s in b and a[s] != b[s]]
print(f"resume: {len(same)} steps bit-identical, {len(diff)} differ, {len(a)} in the uninterrupted run, {len(b)} logged after the kill")
open(f"{out}/resume.txt", "w").write(f"same {len(same)} differ {diff}\n")
sys.exit(1 if diff or len(same) < len(a) else 0)
PY
      status=$((status | $?)) ;;
    train-bench)
      step train-bench
      timeout "${STEP_TIMEOUT:-300}" mambalm bench --train --device cuda --preset ${TRAIN_PRESETS:-hybrid-48l,mamba2-48l,transformer-24x} ${TRAIN_SHAPE:---seq-len 4096 --micro-batch 4} --steps ${TRAIN_STEPS:-8} ${TRAIN_ARGS:-} \
        --json-out "$out/train_bench.jsonl" 2>&1 | tee "$out/train_bench.txt"
      if [ -d build-peer ]; then
        MAMBA_SSM_PATH=build-peer PYTHONUNBUFFERED=1 OUT="$out" timeout "${PEER_TIMEOUT:-400}" python3 build-peer/train_anchor.py 2>&1 | tee "$out/peer_train.txt"
      fi ;;
    train-ab)
      # This binary's training step beside BASELINE's (another mambalm binary in the bundle, e.g.
      # the previous commit's), alternated twice per preset in one call: a change worth ~1% of a
      # step is below the +-1% that the same binary moves between calls.
      step train-ab
      [ -n "${BASELINE:-}" ] || { echo "train-ab: set BASELINE to the other mambalm binary"; status=1; continue; }
      for r in 1 2; do
        for p in $(echo "${TRAIN_PRESETS:-transformer-24x,hybrid-48l,mamba2-48l}" | tr , " "); do
          for b in "$BASELINE" "$(command -v mambalm)"; do
            echo "$p round $r: $b"
            timeout "${STEP_TIMEOUT:-300}" "$b" bench --train --device cuda --preset "$p" ${TRAIN_SHAPE:---seq-len 4096 --micro-batch 4} \
              --steps ${TRAIN_STEPS:-6} ${TRAIN_ARGS:-} 2>&1 | tee -a "$out/train_ab.txt" | grep -E "^\| $p"
          done
        done
      done ;;
    kernels)
      step kernels
      timeout 120 mambalm_bench_ssd 2>&1 | tee "$out/bench_ssd.txt" | tail -n 12
      timeout 120 mambalm_bench_attention 2>&1 | tee "$out/bench_attention.txt" | tail -n 12
      # Training calls attention with bf16 activations (the _bf16act rows); the fp32 rows add
      # the conversion glue that only fp32 callers pay.
      grep -E "^training .*_cudnn" "$out/bench_attention.txt"
      PYTHONUNBUFFERED=1 timeout 120 python3 bench/cuda/attention_cudnn_probe.py 2>&1 | tee "$out/peer_attention_cudnn.txt"
      if [ -d build-peer ]; then
        MAMBA_SSM_PATH=build-peer PYTHONUNBUFFERED=1 timeout 200 python3 build-peer/kernel_peers.py 2>&1 | tee "$out/peer_kernels.txt"
      fi ;;
    *) echo "unknown step $what"; status=1 ;;
  esac
done
echo "gpu-train-check: exit $status"
exit $status
