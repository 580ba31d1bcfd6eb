#!/usr/bin/env bash
# Remake the real captures kvmgen ships (root, /dev/kvm, strace, QEMU; see docs/importers.md):
#   tests/data/captures/strace-*.log   minivmm.py under strace, one log per option set
#   traces/captures/qemu-boot.*        one QEMU SeaBIOS boot seen four ways by kvmgen record
#   traces/captures/two-vmms.*         a QEMU boot and minivmm.py at once, kernel trace unfiltered
# Usage: tests/data/captures/make_captures.sh [KVMGEN] (default: .venv/bin/kvmgen)
set -euo pipefail
cd "$(dirname "$0")/../../.."
KVMGEN=${1:-.venv/bin/kvmgen}
PY=$(dirname "$KVMGEN")/python
HERE=tests/data/captures
OUT=traces/captures
mkdir -p "$OUT"
QEMU=(qemu-system-x86_64 -enable-kvm -machine pc -m 256 -nodefaults -vga none
      -display none -monitor none -serial none -trace kvm_set_user_memory -msg timestamp=on)

# strace's option sets: -f with each time format, -y, -X raw/verbose, and none.
for spec in "tt:-tt" "ttt-T:-ttt -T" "t-y:-t -y" "r:-r" "raw:-ttt -X raw" "verbose:-ttt -X verbose" "none:"; do
  name=${spec%%:*}; opts=${spec#*:}
  # shellcheck disable=SC2086
  strace -f $opts -e trace=ioctl -o "$HERE/strace-$name.log" "$PY" "$HERE/minivmm.py"
done

# One boot, recorded: QEMU's own log, strace's log, the kernel trace and the trace.
raw=$(mktemp -d)
"$KVMGEN" record -q --raw "$raw" -o "$OUT/qemu-boot.yaml" --duration 2.5 -- \
  "${QEMU[@]}" -D "$OUT/qemu-boot.qemu.log"
cp "$raw/strace.log" "$OUT/qemu-boot.strace.log"
cp "$raw/kernel-trace.txt" "$OUT/qemu-boot.kernel-trace.txt"
rm -r "$raw"

# Two VMMs at once, the kernel trace taken for every process (as a plain tracefs
# capture is): the other VMM's zaps must be left out of QEMU's trace.
tracefs=$(awk '$3 == "tracefs" {print $2; exit}' /proc/mounts)
inst="$tracefs/instances/kvmgen-two-vmms-$$"
mkdir "$inst"
echo mono > "$inst/trace_clock"
echo 1 > "$inst/options/record-tgid"
echo 1 > "$inst/events/kvmmmu/kvm_mmu_zap_all_fast/enable"
cat "$inst/trace_pipe" > "$OUT/two-vmms.kernel-trace.txt" &
reader=$!
"${QEMU[@]}" -D "$OUT/two-vmms.qemu.log" &
qemu=$!
sleep 0.3
"$PY" "$HERE/minivmm.py"
sleep 2
kill -TERM "$qemu"; wait "$qemu" || true
sleep 0.5
kill "$reader"; wait "$reader" 2>/dev/null || true
rmdir "$inst"
