#!/usr/bin/env bash
# How the inspector's training step grows with the crop side: cae's step loop (one epoch of
# CATEGORY's first 40 images, 4 crops each, batch 8) against the PyTorch reference's 20 steps
# (bench/draem_reference.py steps --crop), alternately, 2 threads each, with each process's
# peak resident memory (/usr/bin/time). CATEGORY's images must be at least the largest crop.
#
#   bench/draem_scaling.sh CATEGORY [CROPS] [ROUNDS]     (default "64 128 256", 3)
set -euo pipefail
cd "$(dirname "$0")/.."
category="$1"
crops="${2:-64 128 256}"
rounds="${3:-3}"
python="${PYTHON:-bench/.venv/bin/python}"
cae="${CAE:-target/release/cae}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "crop round cae_crops_per_s cae_peak_MB pytorch_crops_per_s pytorch_peak_MB"
for crop in $crops; do
  for i in $(seq "$rounds"); do
    /usr/bin/time -f "%M" -o "$out/cae.mem" "$cae" --threads 2 train-ae --model draem \
      --images "$category" --patch "$crop" --train-limit 40 --epochs 1 --out "$out/run" \
      --force --quiet >/dev/null 2>&1
    c=$(python3 -c 'import json,sys; print(round(json.loads(open(sys.argv[1]).readline())["samples_per_sec"], 2))' "$out/run/metrics.jsonl")
    t=$(/usr/bin/time -f "%M" -o "$out/torch.mem" "$python" bench/draem_reference.py steps \
      --category "$category" --steps 20 --threads 2 --crop "$crop" |
      python3 -c 'import json,sys; print(round(json.load(sys.stdin)["images_per_sec"], 2))')
    echo "$crop $i $c $(($(cat "$out/cae.mem") / 1024)) $t $(($(cat "$out/torch.mem") / 1024))"
  done
done
