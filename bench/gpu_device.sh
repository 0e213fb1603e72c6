#!/bin/sh
# On the CUDA machine, from the repository root: join the parts bench/gpu_pack.py made, install the wheels
# they carry beside the machine's own packages (its torch stays), and run the GPU check on the carried model.
#   sh bench/gpu_device.sh PACK_DIR [bench.gpu_check arguments, e.g. --streams 32 64 --batch 16]
# PYTHON (default python3) is the interpreter that has torch; GPU_PACK_DEST (default /tmp/tts-api-gpu) is
# where the parts are unpacked.
set -eu
pack=$1
shift
python=${PYTHON:-python3}
dest=${GPU_PACK_DEST:-/tmp/tts-api-gpu}
rm -rf "$dest"
mkdir -p "$dest"
cat "$pack"/part-* | tar -x -C "$dest"
if ls "$dest"/wheels/*.whl >/dev/null 2>&1; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --target "$dest/site" "$dest"/wheels/*.whl
fi
PYTHONPATH="$dest/site:$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 \
    exec "$python" -m bench.gpu_check --model-dir "$dest/model" "$@"
