#!/usr/bin/env bash
# The inspector's training step, cae against the PyTorch reference (bench/draem_reference.py:
# the same networks, crops, batch and losses), alternately on the same machine, 2 threads each:
# cae trains one epoch of CATEGORY's first 40 images (4 crops each: 20 steps of 8) and reports
# its step loop's crops/s; PyTorch times 20 steps. Prints each round and the medians.
#
#   bench/draem_speed.sh CATEGORY [ROUNDS]      (default 5; PyTorch from bench/.venv)
set -euo pipefail
cd "$(dirname "$0")/.."
category="$1"
rounds="${2:-5}"
python="${PYTHON:-bench/.venv/bin/python}"
cae="${CAE:-target/release/cae}"
out=$(mktemp -d)
for i in $(seq "$rounds"); do
  "$cae" --threads 2 train-ae --model draem --images "$category" --train-limit 40 --epochs 1 \
    --out "$out/run" --force --quiet >/dev/null 2>&1
  c=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["samples_per_sec"])' "$out/run/metrics.jsonl")
  t=$("$python" bench/draem_reference.py steps --category "$category" --steps 20 --threads 2 |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["images_per_sec"])')
  echo "round $i: cae $c crops/s, pytorch $t crops/s, ratio $(python3 -c "print(round($c/$t, 3))")"
  echo "$c $t" >>"$out/rates"
done
python3 - "$out/rates" <<'PY'
import statistics, sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1])]
c = statistics.median(r[0] for r in rows)
t = statistics.median(r[1] for r in rows)
print(f"median over {len(rows)} rounds: cae {c:.2f} crops/s, pytorch {t:.2f} crops/s, cae/pytorch {c / t:.2f}x")
PY
