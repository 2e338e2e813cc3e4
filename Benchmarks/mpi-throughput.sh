#!/usr/bin/env bash
# Generation throughput on one machine: `dsg generate` with one and with all kernel threads, and `dsg-mpi
# generate` with one rank (all cores) and with one rank per core (one thread each). Docs/PERFORMANCE.md records
# its output. Usage: bash Benchmarks/mpi-throughput.sh [repetitions] [batch sizes...]   (run from the package root)
set -euo pipefail
repetitions=${1:-2}
shift || true
batches=("${@:-8 21 64}")
read -r -a batches <<< "${batches[*]}"
swift build -c release --product dsg >/dev/null
swift build -c release --product dsg-mpi >/dev/null
bin=$(swift build -c release --show-bin-path)
cores=$(nproc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
options=(--count 64 --iterations 200 --seed 0)
# A run's wall time in seconds, from a clean folder.
seconds() {
    rm -rf samples*
    /usr/bin/time -f %e -o time.txt "$@" > /dev/null 2> run.err || { cat run.err >&2; exit 1; }
    cat time.txt
}
echo "64 ResNet-20 samples, 200 iterations each, $cores cores; wall seconds per run, $repetitions runs each, alternating"
printf "%-6s %-28s %-28s %-28s %-28s\n" batch "dsg generate, 1 thread" "dsg generate, $cores threads" \
    "dsg-mpi -np 1, $cores threads" "dsg-mpi -np $cores, 1 thread"
for batch in "${batches[@]}"; do
    a=() b=() c=() d=()
    for _ in $(seq "$repetitions"); do
        a+=("$(DSG_THREADS=1 seconds "$bin/dsg" generate "${options[@]}" --batch-size "$batch")")
        b+=("$(seconds "$bin/dsg" generate "${options[@]}" --batch-size "$batch")")
        c+=("$(seconds mpirun --allow-run-as-root --bind-to none -np 1 "$bin/dsg-mpi" generate "${options[@]}" \
            --batch-size "$batch")")
        d+=("$(seconds mpirun --allow-run-as-root --oversubscribe -np "$cores" "$bin/dsg-mpi" generate \
            "${options[@]}" --batch-size "$batch")")
    done
    printf "%-6s %-28s %-28s %-28s %-28s\n" "$batch" "${a[*]}" "${b[*]}" "${c[*]}" "${d[*]}"
done
