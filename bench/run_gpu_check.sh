#!/usr/bin/env bash
# The one command for a bare GPU machine (Python 3.12 with PyTorch, no network): installs what
# bench/fetch_gpu_wheels.sh gathered in .whl/ (no network: the packed site-packages tree is unpacked into
# /tmp/autounet_site and put on PYTHONPATH, with this checkout), then runs bench/gpu_check.py, stopped in time:
# its own deadline is 540 s and `timeout` kills it at 570 s; what it measured by then is in OUT.
#
#   bash bench/run_gpu_check.sh [OUT] [gpu_check.py options...]     (OUT default: $OUT/gpu_check, else /tmp/gpu_check)
#   bash bench/run_gpu_check.sh --install-only                       (unpack and check the imports, nothing else)
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
site=/tmp/autounet_site
install_only=0
if [ "${1:-}" = "--install-only" ]; then install_only=1; shift; fi
out=${1:-${OUT:-/tmp}/gpu_check}
[ $# -gt 0 ] && shift

if [ -f "$repo/.whl/site.tar.xz" ] && [ ! -f "$site/.unpacked" ]; then
    mkdir -p "$site" && xz -dc -T0 "$repo/.whl/site.tar.xz" | tar -C "$site" -xf - && touch "$site/.unpacked" \
        || { echo "could not unpack $repo/.whl/site.tar.xz into $site" >&2; exit 2; }
elif [ ! -f "$site/.unpacked" ] && ls "$repo"/.whl/wheels/*.whl > /dev/null 2>&1; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
        "$repo"/.whl/wheels/*.whl && touch "$site/.unpacked" || exit 2
fi
if [ ! -f "$site/.unpacked" ]; then
    echo "note: no carried packages ($repo/.whl/site.tar.xz was not here and $site was not unpacked before);" \
         "a bare machine needs them: see docs/gpu-check.md" >&2
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
[ -d "$site" ] && export PYTHONPATH="$repo:$site${PYTHONPATH#"$repo"}"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
"$python" -c "import torch, autounet.cli.main, SimpleITK, nibabel, batchgenerators; print('autounet imports; torch',
torch.__version__, 'CUDA', torch.cuda.is_available())" || { echo "autounet's dependencies are missing" >&2; exit 2; }
"$python" -c "import nnunetv2, blosc2, acvl_utils, dynamic_network_architectures; print('nnunetv2 imports')" \
    || echo "nnunetv2 does not import: the check runs without its columns"
[ "$install_only" = 1 ] && exit 0
mkdir -p "$out"
timeout -k 10 570 "$python" "$repo/bench/gpu_check.py" --out "$out" "$@" 2>&1 | tee "$out/gpu_check.log"
exit "${PIPESTATUS[0]}"
