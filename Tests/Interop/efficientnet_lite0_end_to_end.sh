#!/usr/bin/env bash
# The whole path on a real ImageNet model, EfficientNet-Lite0 (its published weights, imported from ONNX):
# DSG, ZeroQ and Gaussian-noise samples at 224x224, PTQ at W8A8, W6A6 and W4A8 in the integer-kernel scheme
# (min/max and symmetric per-channel weights), QDQ export, and onnxruntime on foolbox's 20 labelled ImageNet photos against the Float32 model. Writes
# results.md (the table of Docs/RESULTS.md) and the sample grids into the output folder.
#
#   bash Tests/Interop/efficientnet_lite0_end_to_end.sh [OUTPUT_FOLDER]   (default .build/efficientnet-lite0-e2e)
#
# About an hour on a 2-core machine: sample generation, and AdaRound for the last row. Run it again after an interruption:
# sample files resume at their last finished batch, and finished steps are kept. SAMPLES, BATCH and ITERATIONS
# (environment) change the schedule; the defaults are the ones Docs/RESULTS.md reports.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
out="$(mkdir -p "${1:-.build/efficientnet-lite0-e2e}" && cd "${1:-.build/efficientnet-lite0-e2e}" && pwd)"
samples="${SAMPLES:-32}" batch="${BATCH:-8}" iterations="${ITERATIONS:-200}"

bash .ci/large-fixtures.sh
model=".build/large-fixtures/efficientnet-lite0.onnx"
photos=".build/large-fixtures/foolbox-imagenet"
# EfficientNet-Lite's evaluation preprocessing (TF's preprocess_for_eval, Lite mean and deviation).
images=(--images "$photos" --crop-fraction 0.875 --mean 127/255 --std 128/255)

venv="$out/venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check onnxruntime==1.32.0 onnx==1.23.2 numpy
fi
swift build -c release --product dsg
dsg=".build/release/dsg"
timed() {  # peak memory and wall time of a command, when GNU time is there
    if [ -x /usr/bin/time ]; then /usr/bin/time -f "%e s wall, %M KB peak resident" "$@"; else "$@"; fi
}

"$dsg" evaluate --model "$model" "${images[@]}" --save-logits "$out/fp32-logits.safetensors" | tee "$out/fp32.txt"
for preset in dsg zeroQ gaussian; do
    # The report is written last: once it is there, the samples are finished and their timing is kept.
    [ -f "$out/samples-$preset.json" ] && continue
    steps=(--iterations "$iterations")
    [ "$preset" = gaussian ] && steps=()  # noise as drawn: the floor
    timed "$dsg" generate --model "$model" --preset "$preset" --count "$samples" --batch-size "$batch" \
        "${steps[@]}" --seed 0 --output "$out/samples-$preset.safetensors" \
        --grid "$out/grid-$preset.png" --report "$out/samples-$preset.json" 2>&1 | tr '\r' '\n' | tail -2 \
        | tee "$out/generate-$preset.txt"
done

for preset in dsg zeroQ gaussian; do
    for bits in 8/8 6/6 4/8; do
        for range in minMax symmetric; do
            w="${bits%/*}" a="${bits#*/}" name="$out/w${w}a${a}-$preset-$range"
            "$dsg" quantize --model "$model" --samples "$out/samples-$preset.safetensors" --weight-bits "$w" \
                --activation-bits "$a" --integer-kernels --weight-range "$range" "${images[@]}" \
                --output "$name.onnx" --save-logits "$name-logits.safetensors" | tee "$name.txt"
            "$venv/bin/python" Tests/Interop/onnxruntime_check.py "$name.onnx" "$name-logits.safetensors" \
                --reference "$model" --json "$name.json"
        done
    done
done
# W4A8 collapses with nearest rounding; the same from DSG samples with AdaRound (200 steps per layer, resumable).
name="$out/w4a8-dsg-adaround"
"$dsg" quantize --model "$model" --samples "$out/samples-dsg.safetensors" --weight-bits 4 --activation-bits 8 \
    --integer-kernels --weight-range minMax --reconstruction adaround --reconstruction-iterations 200 \
    --checkpoint "$name-checkpoint.safetensors" "${images[@]}" --output "$name.onnx" \
    --save-logits "$name-logits.safetensors" | tee "$name.txt"
"$venv/bin/python" Tests/Interop/onnxruntime_check.py "$name.onnx" "$name-logits.safetensors" \
    --reference "$model" --json "$name.json"
"$venv/bin/python" Tests/Interop/onnxruntime_check.py "$model" "$out/fp32-logits.safetensors" \
    --json "$out/fp32.json" --latency
for range in minMax symmetric; do
    name="$out/w8a8-dsg-$range"
    "$venv/bin/python" Tests/Interop/onnxruntime_check.py "$name.onnx" "$name-logits.safetensors" \
        --json "$name-latency.json" --latency --require-ops QLinearConv,QLinearAdd
done
# Float32 against the deployable W8A8 file at batch 1 and 64, alternating in one sitting.
"$venv/bin/python" Tests/Interop/onnxruntime_latency.py "$model" "$out/w8a8-dsg-symmetric.onnx" \
    --shape 3,224,224 --rounds 5 | tee "$out/latency.txt"
"$venv/bin/python" Tests/Interop/efficientnet_lite0_table.py "$out" > "$out/results.md"
cat "$out/results.md"
