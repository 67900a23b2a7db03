#!/usr/bin/env bash
# Gathers what a bare GPU machine (Python 3.12, PyTorch, no network) needs for bench/gpu_check.py, into the
# git-ignored folder .whl/ of this checkout, ready to be carried there:
#
#   .whl/wheels/       the wheels (Python 3.12, manylinux x86-64) of the packages that machine lacks: SimpleITK,
#                      nibabel, batchgenerators, typer (pinned below autounet's upper bound), and nnU-Net v2 with the
#                      modules it imports while planning, training and predicting (checked with python -X importtime)
#   .whl/site.tar.xz   the same wheels unpacked into one site-packages tree and xz-compressed (about half the bytes
#                      of the wheels: a carried working tree is limited to 64 MiB); bench/run_gpu_check.sh unpacks it
#   .whl/nnunet/       nnU-Net's benchmark trainer (nnUNetTrainer_CPUBench: fixed iterations, per-iteration wait and
#                      step times), copied from ../shared/bench
#   .whl/data/         the real datasets from ../shared/data: Hippocampus (all 260 cases), ISBI 2012 (training
#                      images only) and PH2 (the first PH2_CASES cases, default 40: the 50 do not fit beside the rest)
#
# Usage (here, with network): bash bench/fetch_gpu_wheels.sh     then see docs/gpu-check.md for the two device calls.
# Takes a few minutes (xz -9 of about 300 MB: 8 minutes on a loaded 2-core machine); run it again to refresh.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=${SHARED:-$repo/../shared}
python=${PYTHON:-python3}
out=$repo/.whl
ph2_cases=${PH2_CASES:-40}
cd "$repo"
git check-ignore -q .whl/x || { echo ".whl/ is not git-ignored in $repo; add '/.whl/' to .gitignore first" >&2; exit 1; }
mkdir -p "$out/wheels" "$out/nnunet" "$out/data"

platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
# Versions as in the environments this was rehearsed with (autounet's venv, nnU-Net 2.8.1's venv).
binary=(SimpleITK==2.5.7 nibabel==5.4.2 batchgenerators==0.25.5 typer==0.29.2 nnunetv2==2.8.1
        dynamic_network_architectures==0.4.4 batchgeneratorsv2==0.3.6 blosc2==4.15.0 ndindex==1.10.1
        connected-components-3d==4.1.1)
source_only=(acvl_utils==0.2.6)   # published as a source archive only: built into a (pure-Python) wheel here
for spec in "${binary[@]}"; do
    "$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" -d "$out/wheels" "$spec"
done
for spec in "${source_only[@]}"; do
    "$python" -m pip wheel -q --no-deps -w "$out/wheels" "$spec"
done

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
for wheel in "$out"/wheels/*.whl; do
    "$python" -m zipfile -e "$wheel" "$stage/site"
done
tar -C "$stage/site" -cf - . | xz -9 -T0 > "$out/site.tar.xz.part"
mv "$out/site.tar.xz.part" "$out/site.tar.xz"

cp "$shared/bench/nnUNetTrainer_CPUBench.py" "$out/nnunet/"

copy_dataset() {  # copy_dataset NAME MAX_CASES SUBFOLDERS...: dataset.json, PROVENANCE.md and the first cases
    local name=$1 max=$2; shift 2
    local src=$shared/data/$name dst=$out/data/$name
    [ -f "$src/dataset.json" ] || { echo "skip $name: $src/dataset.json not found"; return; }
    rm -rf "$dst"; mkdir -p "$dst"
    cp "$src/dataset.json" "$dst/"; [ -f "$src/PROVENANCE.md" ] && cp "$src/PROVENANCE.md" "$dst/"
    mkdir -p "$dst/labelsTr" "$dst/imagesTr"
    ls "$src/labelsTr" | sort | head -n "$max" | while read -r label; do
        cp "$src/labelsTr/$label" "$dst/labelsTr/"
        case_id=${label%%.*}
        cp "$src/imagesTr/${case_id}"_0* "$dst/imagesTr/"
    done
    local n; n=$(ls "$dst/labelsTr" | wc -l)
    "$python" - "$dst/dataset.json" "$n" <<'EOF'
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
spec = json.load(open(path))
spec["numTraining"] = n
json.dump(spec, open(path, "w"), indent=2)
EOF
}
copy_dataset Dataset004_Hippocampus 100000
copy_dataset Dataset001_ISBI2012EM 100000
copy_dataset Dataset010_PH2Dermoscopy "$ph2_cases"

mib() { du -sm "$@" | awk '{s += $1} END {print s}'; }
echo "wheels: $(ls "$out/wheels" | wc -l) files, $(mib "$out/wheels") MiB; packed: $(mib "$out/site.tar.xz") MiB"
for d in "$out"/data/*; do echo "data: $(basename "$d") $(mib "$d") MiB"; done
echo "tracked files: $(git ls-files -z | xargs -0 du -cm 2>/dev/null | tail -1 | cut -f1) MiB"
first=(.whl/site.tar.xz .whl/nnunet .whl/data/Dataset001_ISBI2012EM)
second=(.whl/data/Dataset004_Hippocampus .whl/data/Dataset010_PH2Dermoscopy)
echo "first device call carries:  ${first[*]} ($(mib "${first[@]}") MiB)"
echo "second device call carries: ${second[*]} ($(mib "${second[@]}") MiB)"
echo "each call also sends the checkout (tracked and untracked files): keep each total under 64 MiB"
