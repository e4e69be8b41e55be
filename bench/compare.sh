#!/usr/bin/env bash
# Run `cae bench` and the PyTorch reference alternately, several times, on the same machine,
# and print each pair's ratios and their medians (ratios > 1 mean cae is better).
#
#   bench/compare.sh [ROUNDS]        (default 5; data from $CAE_DATA, else ./data)
#
# PyTorch is installed from PyPI into bench/.venv on first use, unless $PYTHON names a Python
# that has it already; the tests never need it.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}"
data="${CAE_DATA:-data}"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  venv=bench/.venv
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet torch numpy
  fi
  python="$venv/bin/python"
fi
cargo build --release --quiet
threads=$(nproc)
out=$(mktemp)
for i in $(seq "$rounds"); do
  echo "round $i/$rounds" >&2
  printf 'cae %s\n' "$(./target/release/cae bench --data "$data")" >>"$out"
  printf 'torch %s\n' "$("$python" bench/pytorch_reference.py throughput --data "$data" --threads "$threads")" >>"$out"
done
python3 - "$out" <<'PY'
import json, statistics, sys
cae, torch = [], []
for line in open(sys.argv[1]):
    who, js = line.split(" ", 1)
    (cae if who == "cae" else torch).append(json.loads(js))
print(f"CPU: {cae[0].get('cpu', '?')}; threads: cae {cae[0]['threads']}, torch {torch[0]['threads']}; rounds: {len(cae)}")
rows = [
    ("AE training images/s (batch 64)", "ae_train_samples_per_sec", True),
    ("AutoCNN training images/s (batch 50)", "autocnn_train_samples_per_sec", True),
    ("AutoCNN latency, 1 image (us)", "autocnn_latency_us_median", False),
    ("AutoCNN throughput, batch 1000 (images/s)", "autocnn_batch1000_images_per_sec", True),
]
print("| figure | cae, rounds | PyTorch, rounds | per-round ratios | median ratio |")
print("| --- | --- | --- | --- | ---: |")
for name, key, higher in rows:
    ratios = [(c[key] / t[key]) if higher else (t[key] / c[key]) for c, t in zip(cae, torch)]
    rounds = lambda runs: ", ".join(f"{r[key]:.1f}" for r in runs)
    print(f"| {name} | {rounds(cae)} | {rounds(torch)} | "
          f"{', '.join(f'{r:.2f}' for r in ratios)} | {statistics.median(ratios):.2f} |")
print("ratio = cae's advantage: cae/torch for rates, torch/cae for latency (> 1: cae better)")
PY
rm -f "$out"
