#!/usr/bin/env bash
# Peak memory and time per image of `cae anomaly RUN --images CATEGORY` as the number of test
# images grows: a 64-px patch autoencoder scores generated grey-texture categories of SIDE²
# images in tiles 32 px apart (the issue's case), 10, 100 and 1 000 test images each.
#
#   bench/flat_memory.sh [SIDES] [COUNTS]     (default "512 1024" and "10 100 1000")
#
# CAE names the binary (default target/release/cae); 2 threads. Prints one line per run:
# side, images, peak resident MB, seconds per image.
set -euo pipefail
cd "$(dirname "$0")/.."
sides="${1:-512 1024}"
counts="${2:-10 100 1000}"
cae="${CAE:-target/release/cae}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "side images peak_MB s_per_image"
for side in $sides; do
  first=1
  for n in $counts; do
    # The grid category has four defect kinds: n/5 good and n/5 of each kind.
    each=$((n / 5))
    "$cae" benchmark defects --generate-only --categories grid --side "$side" --train 8 \
      --test-good "$each" --test-defect "$each" --out "$out/$n" >/dev/null 2>&1
    if [ "$first" = 1 ]; then
      "$cae" --threads 2 train-ae --images "$out/$n/data/grid" --patch 64 --patches-per-image 4 \
        --latent 100 --epochs 1 --out "$out/run-$side" --quiet >/dev/null 2>&1
      first=0
    fi
    /usr/bin/time -f "%M %e" -o "$out/time" "$cae" --threads 2 anomaly "$out/run-$side" \
      --images "$out/$n/data/grid" --stride 32 >/dev/null 2>&1
    read -r kb seconds <"$out/time"
    python3 -c "import sys; kb, s, n = map(float, sys.argv[1:]); print(f'$side {int(n)} {kb / 1024:.0f} {s / n:.3f}')" \
      "$kb" "$seconds" "$n"
    rm -rf "$out/$n"
  done
done
