#!/bin/sh
# Installs what leakscope needs to build and test on Debian 12 (bookworm). Idempotent.
# Build: compiler, CMake, elfutils libdw (symbols), libunwind (reference unwinder), zlib (CRC),
# cJSON (JSON reports), protobuf-c (protoc-c and its library: pprof output). Tests: g++ (C++ leak
# programs), clang (second compiler, libFuzzer), valgrind (verdict cross-check), python3 (test
# driver), GLib/GObject headers (a real GObject program checked under run --refs), Go and the
# pprof sources Debian ships (Go's own pprof tool reads our pprof output; built offline by the
# tests), jq (a real program under mode sample).
set -eu
pkgs="build-essential cmake pkg-config libdw-dev libelf-dev libunwind-dev zlib1g-dev \
libcjson-dev protobuf-c-compiler libprotobuf-c-dev g++ clang valgrind python3 libglib2.0-dev \
golang-go golang-github-google-pprof-dev jq"
if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
missing=$(dpkg-query -W -f='${Package} ${Status}\n' $pkgs 2>/dev/null | grep -v "install ok installed" | cut -d' ' -f1 || true)
# dpkg-query prints nothing for packages it has never heard of: check each one.
for p in $pkgs; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"; done
missing=$(echo $missing | tr ' ' '\n' | sort -u | tr '\n' ' ')
if [ -n "$(echo $missing | tr -d ' ')" ]; then
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends $missing
fi
