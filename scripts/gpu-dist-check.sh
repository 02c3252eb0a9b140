#!/usr/bin/env bash
# Data-parallel checks on a machine with 2 GPUs (the lent nvidia-h200-x2), one process per GPU
# started with RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT (NCCL bootstraps from there).
#   dp-loss    hybrid-small on the compare dataset: 1 GPU x micro-batch 8 vs 2 GPUs x 4, in f32
#              and in bf16: losses side by side
#   dp-kill    2 GPUs; kill -9 of rank 1 after the first checkpoint: how long rank 0 takes to stop,
#              then --resume to the end
#   dp-bench   bench --train at the peer's shapes on 1 and on 2 GPUs (same per-GPU micro-batch),
#              then PyTorch DDP (torchrun) with the peer model of train_anchor.py on 1 and 2 GPUs
#   dp-mpi     the same f32 loss check started by mpirun (NCCL bootstrapped over MPI), with the
#              Open MPI of .device-data/ompi.tar.xz (scripts/ompi-bundle.sh) when the machine has none
# Here:  bash scripts/gpu-bundle.sh build-cuda build-gpu mambalm  (then compress into .device-data)
# There (carry .device-data and build-peer): bash scripts/gpu-dist-check.sh dp-loss dp-kill dp-bench
set -uo pipefail
cd "$(dirname "$0")/.."
[ -d build-gpu ] || [ ! -f .device-data/bundle.tar.xz ] || python3 -c "import tarfile; tarfile.open('.device-data/bundle.tar.xz').extractall('.')"
source scripts/gpu-env.sh build-gpu
out=${OUT:-/tmp/gpu-dist-check}
mkdir -p "$out"
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader
nvidia-smi topo -m 2>/dev/null | head -4
step() { echo "== $1 ($(date +%T))"; }

# launch2 LOG1 CMD...: rank 0 in the foreground (its output here), rank 1 into LOG1.
launch2() {
  local log1=$1; shift
  export MASTER_ADDR=127.0.0.1 MASTER_PORT=$((29500 + RANDOM % 1000)) WORLD_SIZE=2
  RANK=1 LOCAL_RANK=1 "$@" > "$log1" 2>&1 &
  local p1=$!
  RANK=0 LOCAL_RANK=0 "$@"
  local r0=$?
  wait $p1; local r1=$?
  unset MASTER_ADDR MASTER_PORT WORLD_SIZE
  return $((r0 | r1))
}

d=.device-data/cmp
model=/tmp/dp-model
small_model() { [ -d $model ] || mambalm init --arch hybrid --preset hybrid-small --tokenizer $d/sp4096.model --seed 1 --out $model >/dev/null; }
for what in "$@"; do
  case "$what" in
    dp-loss)
      step dp-loss
      small_model
      # A learning rate that trains without loss spikes: at a spike, any change of summation
      # order (another micro-batch split on one GPU too) sends two runs apart.
      common=(--model $model --data $d/corpus --seq-len 128 --steps 30 --lr ${DP_LR:-6e-4} --warmup 10 --val-interval 15
              --log-interval 10 --checkpoint-interval 0 --device cuda)
      for dt in f32 bf16; do
        rm -rf /tmp/dp1-$dt /tmp/dp2-$dt /tmp/dpc-$dt
        timeout 200 mambalm train "${common[@]}" --dtype $dt --micro-batch 8 --grad-accum 2 --out /tmp/dp1-$dt > "$out/dp1_$dt.log" 2>&1
        # Control: one GPU, the same batch split as 4 x 4 (what the 2-GPU run differs by, on one GPU).
        timeout 200 mambalm train "${common[@]}" --dtype $dt --micro-batch 4 --grad-accum 4 --out /tmp/dpc-$dt > "$out/dpc_$dt.log" 2>&1
        cp /tmp/dpc-$dt/metrics.jsonl "$out/dpc_$dt.jsonl"
        timeout 200 bash -c "$(declare -f launch2); launch2 $out/dp2_${dt}_rank1.log mambalm train ${common[*]} --dtype $dt --micro-batch 4 --grad-accum 2 --out /tmp/dp2-$dt" > "$out/dp2_$dt.log" 2>&1
        echo "rc $dt: $?"; grep -E "data parallel|memory plan" "$out/dp2_$dt.log" | head -3
        cp /tmp/dp1-$dt/metrics.jsonl "$out/dp1_$dt.jsonl"; cp /tmp/dp2-$dt/metrics.jsonl "$out/dp2_$dt.jsonl"
      done
      python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
rows = lambda p: {r["step"]: r for r in map(json.loads, open(p))}
for dt in ("f32", "bf16"):
    a, b, c = rows(f"{out}/dp1_{dt}.jsonl"), rows(f"{out}/dp2_{dt}.jsonl"), rows(f"{out}/dpc_{dt}.jsonl")
    worst = lambda x: max(abs(a[s]["loss"] - x[s]["loss"]) / a[s]["loss"] for s in a)
    print(f"{dt}: steps {len(a)} vs {len(b)}; worst relative loss difference to 1 GPU 8x2: 2 GPUs 4x2 {worst(b):.2e}, "
          f"1 GPU 4x4 (control) {worst(c):.2e}")
    for s in (1, 2, 10, 15, 20, 30):
        v = lambda r: f" val {r['val_loss']:.6f}" if "val_loss" in r else ""
        print(f"  step {s:3d}: 1 GPU {a[s]['loss']:.6f}{v(a[s])} | 2 GPUs {b[s]['loss']:.6f}{v(b[s])}")
PY
      ;;
    dp-kill)
      step dp-kill
      small_model
      args=(mambalm train --model $model --data $d/corpus --seq-len 128 --micro-batch 4 --steps 200 --lr 2e-3 --warmup 5
            --val-interval 0 --log-interval 10 --checkpoint-interval 40 --device cuda --out /tmp/dp-kill)
      rm -rf /tmp/dp-kill
      export MASTER_ADDR=127.0.0.1 MASTER_PORT=$((29500 + RANDOM % 1000)) WORLD_SIZE=2
      RANK=1 LOCAL_RANK=1 "${args[@]}" > "$out/kill_rank1.log" 2>&1 & p1=$!
      RANK=0 LOCAL_RANK=0 "${args[@]}" > "$out/kill_rank0.log" 2>&1 & p0=$!
      while [ ! -f /tmp/dp-kill/checkpoints/latest ] && kill -0 $p0 2>/dev/null; do sleep 0.05; done
      kill -9 $p1; t0=$(date +%s%N)
      while kill -0 $p0 2>/dev/null && [ $(( ($(date +%s%N) - t0) / 1000000000 )) -lt 120 ]; do sleep 0.2; done
      wait $p0; r0=$?
      echo "rank 1 killed after $(wc -l < /tmp/dp-kill/metrics.jsonl) logged steps; rank 0 exited with $r0 after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
      tail -n 2 "$out/kill_rank0.log"
      launch2 "$out/kill_resume_rank1.log" "${args[@]}" --resume > "$out/kill_resume.log" 2>&1
      echo "resume rc $?: $(grep -c . /tmp/dp-kill/metrics.jsonl) steps logged"; grep -E "resuming|step 200/" "$out/kill_resume.log"
      unset MASTER_ADDR MASTER_PORT WORLD_SIZE ;;
    dp-bench)
      step dp-bench
      presets=${DP_PRESETS:-hybrid-48l,transformer-24x}
      timeout 300 mambalm bench --train --device cuda --preset $presets --seq-len 4096 --micro-batch 4 --steps ${TRAIN_STEPS:-8} \
        --json-out "$out/dp_bench_1.jsonl" 2>&1 | tee "$out/dp_bench_1.txt"
      timeout 300 bash -c "$(declare -f launch2); launch2 $out/dp_bench_rank1.log mambalm bench --train --device cuda --preset $presets --seq-len 4096 --micro-batch 4 --steps ${TRAIN_STEPS:-8} --json-out $out/dp_bench_2.jsonl" 2>&1 | tee "$out/dp_bench_2.txt"
      if [ -d build-peer ] && [ -z "${NO_PEER:-}" ]; then
        peers=${DP_PEERS:-hybrid_48L transformer_24x}
        for n in 1 2; do
          PEER_DIR=build-peer PYTHONUNBUFFERED=1 timeout 300 torchrun --standalone --nproc-per-node $n bench/ddp_peer.py $peers 2>&1 \
            | grep -E '^\{|Error|error' | tee -a "$out/ddp_peer.txt"
        done
      fi ;;
    dp-mpi)
      step dp-mpi
      small_model
      if ! command -v mpirun >/dev/null; then
        python3 -c "import tarfile; tarfile.open('.device-data/ompi.tar.xz').extractall('/tmp')"
        export OPAL_PREFIX=/tmp/ompi PATH=/tmp/ompi/bin:$PATH LD_LIBRARY_PATH=$LD_LIBRARY_PATH:/tmp/ompi/extra
        export PMIX_MCA_mca_base_component_path=/tmp/ompi/lib/x86_64-linux-gnu/pmix2/lib/pmix
      fi
      launcher=$(command -v mpirun || command -v orterun)
      common=(--model $model --data $d/corpus --seq-len 128 --steps 30 --lr 6e-4 --warmup 10 --val-interval 15
              --log-interval 10 --checkpoint-interval 0 --device cuda --dtype f32)
      rm -rf /tmp/mpi1 /tmp/mpi2
      timeout 200 mambalm train "${common[@]}" --micro-batch 8 --grad-accum 2 --out /tmp/mpi1 > "$out/mpi1.log" 2>&1
      timeout 200 "$launcher" --allow-run-as-root --oversubscribe --bind-to none -np 2 -x LD_LIBRARY_PATH -x PATH -x NCCL_NVLS_ENABLE \
        -x OPAL_PREFIX -x PMIX_MCA_mca_base_component_path mambalm train "${common[@]}" --micro-batch 4 --grad-accum 2 --out /tmp/mpi2 \
        > "$out/mpi2.log" 2>&1
      echo "mpirun rc $?"; grep -E "data parallel|error" "$out/mpi2.log" | head -3
      python3 - <<'PY'
import json
rows = lambda p: {r["step"]: r["loss"] for r in map(json.loads, open(p))}
a, b = rows("/tmp/mpi1/metrics.jsonl"), rows("/tmp/mpi2/metrics.jsonl")
print(f"mpirun, 2 GPUs vs 1 GPU, f32: steps {len(a)} vs {len(b)}; worst relative loss difference "
      f"{max(abs(a[s] - b[s]) / a[s] for s in a):.2e}")
PY
      ;;
    *) echo "unknown step $what" ;;
  esac
done
