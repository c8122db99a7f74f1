// A software page walker for the emulation assists: IA-32e paging with 4 or 5 levels, with the
// permission checks and the #PF error code of SDM vol. 3 4.5-4.7, and the accessed and dirty
// flags set as the CPU sets them (4.8). evmm walks the guest's tables itself because KVM_TRANSLATE
// hard-codes a supervisor write and so cannot tell a read-only or a user page.
//
// Rules:
//   - Paging off (CR0.PG = 0): the linear address is the physical address.
//   - 32-bit and PAE paging are refused with EOPNOTSUPP: this host's KVM refuses paging outside
//     long mode, so no guest here can run with them.
//   - Accessed flags are set on every entry of a successful walk, and the dirty flag on the leaf
//     of a write, each with a compare-exchange on guest memory (other vCPUs run meanwhile); an
//     entry changed under the walk restarts it.
//   - Not modelled: protection keys (CR4.PKE/PKS), HLAT, CET shadow-stack pages, the TLB.
//
// Errors: EFAULT with the #PF the CPU would raise (CR2 = the linear address); EFAULT without a
// fault when a paging structure lies outside guest RAM; EOPNOTSUPP as above.
#pragma once

#include "kvm/kvm_uapi.h"

#include <cstdint>

#include "memory/guest_memory.h"
#include "vcpu/x86_fault.h"

namespace evmm::x86 {

enum class AccessType : uint8_t { Read, Write, Fetch };

// #PF error code bits, SDM vol. 3 figure 4-12.
namespace pf {
inline constexpr uint32_t kPresent = 1u << 0;
inline constexpr uint32_t kWrite = 1u << 1;
inline constexpr uint32_t kUser = 1u << 2;
inline constexpr uint32_t kReserved = 1u << 3;
inline constexpr uint32_t kFetch = 1u << 4;
}  // namespace pf

// The state a walk depends on, taken from the vCPU's registers.
struct PagingContext {
  uint64_t cr0, cr3, cr4, efer;
  bool ac;               // RFLAGS.AC, for SMAP
  bool user;             // CPL 3 and not an implicit supervisor access (SDM vol. 3 4.6)
  bool implicit;         // an implicit supervisor access: descriptor tables, TSS, interrupt stack
  unsigned phys_bits;    // MAXPHYADDR; bits above it in an entry are reserved

  static PagingContext from(const kvm_regs& regs, const kvm_sregs& sregs, bool implicit, unsigned phys_bits);
};

// The guest-physical address of linear, for an access of the given type.
AssistResult<uint64_t> walk(const GuestMemory& mem, const PagingContext& ctx, uint64_t linear, AccessType access);

}  // namespace evmm::x86
