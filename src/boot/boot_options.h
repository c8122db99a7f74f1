// How a Linux image is booted: the choices `evmm run --boot` and `--decompress` make, kept apart
// from boot.h so that vmm/config.h can name them without the loaders' headers.
#pragma once

namespace evmm {

// Auto: a bzImage goes through the Linux 64-bit boot protocol, an ELF with a PVH note through PVH,
// anything else as load_image detects it. Linux and Pvh force that protocol, or fail saying why.
enum class BootProtocol { Auto, Linux, Pvh };

// Where a bzImage's compressed kernel is unpacked: by evmm before the guest starts (the default),
// or by the kernel's own decompressor running in the guest.
enum class Decompress { Host, Guest };

}  // namespace evmm
