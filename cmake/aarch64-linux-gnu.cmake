# Cross-compiling for 64-bit Arm Linux (Graviton, Grace, Ampere, Raspberry Pi 4/5) with Debian's
# or Ubuntu's cross toolchain (g++-aarch64-linux-gnu) and the arm64 -dev packages installed
# through multiarch (dpkg --add-architecture arm64). scripts/cross-aarch64.sh sets all of this
# up; docs/building.md says how by hand.
#   cmake -S . -B build-arm64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#         -DMAMBALM_CUDA=OFF -DBUILD_TESTING=OFF
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# Multiarch: the arm64 libraries live beside the host's, in /usr/lib/aarch64-linux-gnu.
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# pkg-config must read the arm64 .pc files only (PKG_CONFIG_PATH, e.g. from CMAKE_PREFIX_PATH,
# is still searched first).
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
# Never pick up the host's MPI (its mpicxx wrapper and x86-64 libraries).
set(CMAKE_DISABLE_FIND_PACKAGE_MPI ON)
# Tests and try_run go through qemu-user where it is installed (qemu-user-static).
find_program(MAMBALM_QEMU_AARCH64 NAMES qemu-aarch64-static qemu-aarch64)
if(MAMBALM_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${MAMBALM_QEMU_AARCH64})
endif()
