#!/usr/bin/env bash
# Installs the Debian packages swift-dsg builds and tests against. Safe to run again: apt-get install
# leaves installed packages alone. Uses sudo when not run as root.
set -euo pipefail

# OpenBLAS and LAPACKE for the kernels, zlib for the gzip IDX files, libpng and libjpeg-turbo for image folders,
# Fashion-MNIST itself, ONNX's own backend test cases for the importer's conformance run, and Open MPI for
# dsg-mpi and its tests under mpirun (the DSG library and dsg build without it).
packages=(pkg-config libopenblas-dev liblapacke-dev zlib1g-dev libpng-dev libturbojpeg0-dev dataset-fashion-mnist
          libonnx-testdata openmpi-bin libopenmpi-dev)

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "setup: ${packages[*]} installed"
