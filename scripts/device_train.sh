#!/bin/bash
# Train the bundled model on a lent GPU machine (the device tool's `run`, with carry [".device"]); see
# config/tune/vb-mini2-gpu.yaml. BENCH=1 (the default) first runs bench/train_step.py on the GPU (batch 64 and 256
# eager, 256 compiled: about 2-4 minutes) and trains at the setting that gives the most examples in TRAIN_S
# (scripts/device_kit.py pick; its log says what was picked); arguments after the script's name still override it.
# TRAIN_S (default 270 with the bench, 420 without) bounds the training, whose last DECAY_S (default 40 % of it) cool
# the lr down to zero; the whole command fits in ~9 minutes. A second run in the same lease: BENCH=0 and the picked
# --set arguments.
# Returns under $OUT: model/ (fp16 shards under 16 MiB + config.json), metrics.csv, panel.png, log.txt.
# DATA_SEED (default: the clock) picks the scenes. GPU utilisation (nvidia-smi every 5 s) is summarised in the log.
# CONFIG and RUN (the tune config and run folder) and VB_PERCEPTION_TEXT_ENCODER (a MiniLM folder instead of the
# kit's) let test/test_device_kit.py run it here on the tiny config.
set -euo pipefail
OUT=${OUT:-out/device}
BENCH=${BENCH:-1}
TRAIN_S=${TRAIN_S:-$([ "$BENCH" = 1 ] && echo 270 || echo 420)}
DECAY_S=${DECAY_S:-$((TRAIN_S * 2 / 5))}
mkdir -p "$OUT/model"
exec > >(tee "$OUT/log.txt") 2>&1
PY=$(command -v python3)
echo "python: $PY; $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo 'no GPU')"
# GPU utilisation every 5 s, summarised in the log at the end (a lease returns at most 8 files: no file of its own)
UTIL=/tmp/gpu_util.csv
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -l 5 >"$UTIL" 2>/dev/null &
UTIL_PID=$!
"$PY" -c "import diffusers" 2>/dev/null || "$PY" -m pip install -q --no-index --no-deps .device/wheels/*.whl
if [ -z "${VB_PERCEPTION_TEXT_ENCODER:-}" ]; then  # set: a MiniLM folder is at hand (the script's test)
  "$PY" scripts/device_kit.py text-encoder .device/minilm /tmp/minilm
  export VB_PERCEPTION_TEXT_ENCODER=/tmp/minilm
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
CONFIG=${CONFIG:-config/tune/vb-mini2-gpu.yaml}
# New scenes for every run: two runs of the same data seed render the same scenes (gpu3 and gpu4 repeated gpu1's).
# The default is the clock's seconds; DATA_SEED=N repeats a run's data.
DATA_SEED=${DATA_SEED:-$(date +%s)}
echo "data seed: $DATA_SEED"
RUN=${RUN:-out/runs/vb-mini2-gpu}
PICKED=""
if [ "$BENCH" = 1 ]; then  # where a step's time goes on this GPU, then train at the fastest setting it found
  bench=(bench/train_step.py --config "$CONFIG" --device cuda --bf16 --threads 4 --data-threads 1 --steps 8 \
    --json /tmp/bench.jsonl)
  "$PY" "${bench[@]}" --batch 64 256 || echo "bench exited with $?"
  timeout 240 "$PY" "${bench[@]}" --batch 256 --compile || echo "compiled bench exited with $?"
  cat /tmp/bench.jsonl 2>/dev/null || true
  PICKED=$("$PY" scripts/device_kit.py pick /tmp/bench.jsonl --config "$CONFIG" --train-s "$TRAIN_S") || PICKED=""
  echo "picked: ${PICKED:-none, the config as it is}"
fi
"$PY" -m vb_perception.cli tune --config "$CONFIG" --set train.max_wall_s="$TRAIN_S" \
  --set train.decay_wall_s="$DECAY_S" \
  --set run_dir="$RUN" --set data.seed="$DATA_SEED" $PICKED "$@" || echo "tune exited with $?"
# WEIGHTS=raw (default): the run's last weights, cooled down by DECAY_S; the EMA (0.999) reaches back ~1000 steps,
# beyond a short run's decay. WEIGHTS=ema: the exported EMA model.
if [ "${WEIGHTS:-raw}" = raw ] && [ -f "$RUN/checkpoint/model.safetensors" ]; then
  "$PY" scripts/device_kit.py shard "$RUN/model" "$OUT/model" --weights "$RUN/checkpoint/model.safetensors"
elif [ -f "$RUN/model/model.safetensors" ]; then
  "$PY" scripts/device_kit.py shard "$RUN/model" "$OUT/model"
fi
cp "$RUN/metrics.csv" "$OUT/" 2>/dev/null || true
last=$(ls "$RUN"/panel_*.png 2>/dev/null | tail -1); [ -n "$last" ] && cp "$last" "$OUT/panel.png"
tail -3 "$RUN/metrics.csv" 2>/dev/null || true
kill "$UTIL_PID" 2>/dev/null || true
"$PY" scripts/device_kit.py util "$UTIL" || true
