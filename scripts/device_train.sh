#!/bin/bash
# Train the bundled model on a lent GPU machine (the device tool's `run`, with carry [".device"]); see
# config/tune/vb-mini2-gpu.yaml. TRAIN_S (default 420) bounds the training, whose last DECAY_S (default 40 % of it)
# cool the lr down to zero; the whole command fits in ~9 minutes. BENCH=1 first runs bench/train_step.py on the GPU.
# Returns under $OUT: model/ (fp16 shards under 16 MiB + config.json), metrics.csv, panel.png, log.txt.
set -euo pipefail
OUT=${OUT:-out/device}
TRAIN_S=${TRAIN_S:-420}
DECAY_S=${DECAY_S:-$((TRAIN_S * 2 / 5))}
mkdir -p "$OUT/model"
exec > >(tee "$OUT/log.txt") 2>&1
PY=$(command -v python3)
echo "python: $PY; $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo 'no GPU')"
"$PY" -c "import diffusers" 2>/dev/null || "$PY" -m pip install -q --no-index --no-deps .device/wheels/*.whl
"$PY" scripts/device_kit.py text-encoder .device/minilm /tmp/minilm
export VB_PERCEPTION_TEXT_ENCODER=/tmp/minilm PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [ "${BENCH:-0}" = 1 ]; then  # where a step's time goes on this GPU, before training (about a minute)
  "$PY" bench/train_step.py --config config/tune/vb-mini2-gpu.yaml --device cuda --bf16 --batch 64 256 --threads 4 \
    --steps 8 || echo "bench exited with $?"
fi
RUN=out/runs/vb-mini2-gpu
"$PY" -m vb_perception.cli tune --config config/tune/vb-mini2-gpu.yaml --set train.max_wall_s="$TRAIN_S" \
  --set train.decay_wall_s="$DECAY_S" \
  --set run_dir="$RUN" "$@" || echo "tune exited with $?"
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
