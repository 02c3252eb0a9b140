#!/usr/bin/env bash
# Packs this machine's Open MPI (Debian's openmpi-bin) as a relocatable tree for a GPU machine
# that has none: orterun/orted, the MCA and PMIx components, the help files and the shared
# libraries they load. There: tar xf it under /tmp and set OPAL_PREFIX=/tmp/ompi (Open MPI's own
# relocation), PATH, LD_LIBRARY_PATH=/tmp/ompi/extra and
# PMIX_MCA_mca_base_component_path=/tmp/ompi/lib/x86_64-linux-gnu/pmix2/lib/pmix
# (scripts/gpu-dist-check.sh dp-mpi does).   Usage: bash scripts/ompi-bundle.sh OUT.tar.xz
set -euo pipefail
out=$(realpath -m "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
p=$tmp/ompi
mkdir -p "$p/bin" "$p/lib/x86_64-linux-gnu" "$p/share" "$p/extra"
cp /usr/bin/orterun /usr/bin/orted "$p/bin/"
cp -a /usr/lib/x86_64-linux-gnu/openmpi /usr/lib/x86_64-linux-gnu/pmix2 "$p/lib/x86_64-linux-gnu/"
cp -a /usr/share/openmpi "$p/share/"
rm -rf "$p/lib/x86_64-linux-gnu/openmpi/include" "$p"/lib/x86_64-linux-gnu/pmix2/lib/*.a
for l in libpmix.so.2 libmunge.so.2 libevent-2.1.so.7 libevent_core-2.1.so.7 libevent_pthreads-2.1.so.7 libhwloc.so.15 \
         libudev.so.1 libopen-pal.so.40 libopen-rte.so.40 libmpi.so.40; do
  cp -L "/lib/x86_64-linux-gnu/$l" "$p/extra/"
done
tar cf - -C "$tmp" ompi | xz -T0 -3 > "$out"
echo "ompi-bundle: $(du -h "$out" | cut -f1) in $out"
