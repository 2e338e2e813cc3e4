#!/usr/bin/env bash
# Regenerates ../onnx.pb.swift from onnx.proto. Run by hand after changing onnx.proto; the build never runs it.
# Needs Debian's protobuf-compiler and swift-protobuf's protoc-gen-swift of the version Package.swift names:
#   apt-get install -y protobuf-compiler
#   git clone https://github.com/apple/swift-protobuf && cd swift-protobuf && git checkout 1.39.0 \
#     && swift build -c release --product protoc-gen-swift    # then PLUGIN=<that>/.build/release/protoc-gen-swift
set -euo pipefail
cd "$(dirname "$0")"
plugin="${PLUGIN:-$(command -v protoc-gen-swift)}"
protoc --plugin=protoc-gen-swift="$plugin" --swift_opt=Visibility=Internal --swift_out=.. onnx.proto
echo "wrote $(cd .. && pwd)/onnx.pb.swift"
