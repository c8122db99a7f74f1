#include "vcpu/x86_paging.h"

#include "vcpu/x86_arch.h"

namespace evmm::x86 {
namespace {

// Control-register and EFER bits the walk reads (SDM vol. 3 2.5, 2.2.1).
constexpr uint64_t kCr0Wp = 1ull << 16;
constexpr uint64_t kCr4Smep = 1ull << 20;
constexpr uint64_t kCr4Smap = 1ull << 21;
constexpr uint64_t kEferNxe = 1ull << 11;

// Paging-structure entry bits (SDM vol. 3 tables 4-15 to 4-20).
constexpr uint64_t kPresent = 1ull << 0;
constexpr uint64_t kWritable = 1ull << 1;
constexpr uint64_t kUserBit = 1ull << 2;
constexpr uint64_t kAccessed = 1ull << 5;
constexpr uint64_t kDirty = 1ull << 6;
constexpr uint64_t kPageSize = 1ull << 7;
constexpr uint64_t kExecuteDisable = 1ull << 63;

// A walk whose entries keep changing under it gives up after this many tries.
constexpr int kMaxWalks = 8;

struct Used {
  uint64_t gpa;
  uint64_t value;
};

}  // namespace

PagingContext PagingContext::from(const kvm_regs& regs, const kvm_sregs& sregs, bool implicit, unsigned phys_bits) {
  bool user = !implicit && cpl(regs, sregs) == 3;
  return {sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer, (regs.rflags & rflags::kAC) != 0, user, implicit, phys_bits};
}

AssistResult<uint64_t> walk(const GuestMemory& mem, const PagingContext& ctx, uint64_t linear, AccessType access) {
  if (!(ctx.cr0 & kCr0Pg)) return linear;
  // This host's KVM refuses paging outside long mode, so 32-bit and PAE tables never reach here.
  if (!(ctx.efer & kEferLma))
    return make_error(EOPNOTSUPP, "linear address {:#x}: 32-bit and PAE paging are not walked", linear);

  const bool nxe = (ctx.efer & kEferNxe) != 0;
  const bool write = access == AccessType::Write, fetch = access == AccessType::Fetch;
  const unsigned phys_bits = ctx.phys_bits >= 32 && ctx.phys_bits <= 52 ? ctx.phys_bits : 52;
  const uint64_t frame_mask = ((1ull << phys_bits) - 1) & ~0xfffull;
  // Bits 51:MAXPHYADDR are reserved in every entry, and XD too without EFER.NXE (SDM vol. 3 4.5.4).
  uint64_t reserved = ((1ull << 52) - 1) & ~((1ull << phys_bits) - 1);
  if (!nxe) reserved |= kExecuteDisable;

  // The error code's fixed part (SDM vol. 3 4.7): W/R, U/S, and I/D for a fetch with NX or SMEP.
  uint32_t base_error = (write ? pf::kWrite : 0) | (ctx.user ? pf::kUser : 0) |
                        (fetch && (nxe || (ctx.cr4 & kCr4Smep)) ? pf::kFetch : 0);
  auto fault = [&](uint32_t bits, std::string_view why) {
    return raise(Fault{Vector::PF, base_error | bits, linear}, "linear address {:#x}: {}", linear, why);
  };
  const int levels = (ctx.cr4 & kCr4La57) ? 5 : 4;

  for (int attempt = 0; attempt < kMaxWalks; ++attempt) {
    Used used[5];
    int n = 0;
    bool writable = true, user_page = true, nx = false;
    uint64_t table = ctx.cr3 & frame_mask, phys = 0;
    for (int level = levels; level >= 1; --level) {
      unsigned shift = 12 + 9 * (level - 1);
      uint64_t gpa = table + ((linear >> shift) & 511) * 8;
      GuestSlice s = TRY_CTX(mem.slice(GuestAddress(gpa), 8),
                             fmt::format("paging-structure entry at {:#x} for linear address {:#x}", gpa, linear));
      uint64_t e = TRY(s.load<uint64_t>(0, std::memory_order_acquire));
      if (!(e & kPresent)) return fault(0, fmt::format("not present at level {}", level));
      bool leaf = level == 1 || (e & kPageSize);
      uint64_t bad = e & reserved;
      // PS is reserved in PML5Es and PML4Es; large pages reserve the bits between PAT and the frame.
      if ((level >= 4) && (e & kPageSize)) bad |= kPageSize;
      if (level == 3 && leaf) bad |= e & 0x3fffe000;
      if (level == 2 && leaf) bad |= e & 0x1fe000;
      if (bad) return fault(pf::kPresent | pf::kReserved, fmt::format("reserved bits {:#x} set at level {}", bad, level));
      writable &= (e & kWritable) != 0;
      user_page &= (e & kUserBit) != 0;
      nx |= nxe && (e & kExecuteDisable);
      used[n++] = {gpa, e};
      if (leaf) {
        uint64_t offset_mask = (1ull << shift) - 1;
        phys = (e & frame_mask & ~offset_mask) | (linear & offset_mask);
        break;
      }
      table = e & frame_mask;
    }

    // Access rights, SDM vol. 3 4.6.1.
    const bool smap_blocks = (ctx.cr4 & kCr4Smap) && user_page && !ctx.user && (ctx.implicit || !ctx.ac);
    if (ctx.user) {
      if (!user_page) return fault(pf::kPresent, "a supervisor page, accessed from user mode");
      if (write && !writable) return fault(pf::kPresent, "a read-only page");
      if (fetch && nx) return fault(pf::kPresent, "an execute-disable page");
    } else if (fetch) {
      if (nx) return fault(pf::kPresent, "an execute-disable page");
      if (user_page && (ctx.cr4 & kCr4Smep)) return fault(pf::kPresent, "a user page, fetched with SMEP");
    } else {
      if (smap_blocks) return fault(pf::kPresent, "a user page, accessed by the supervisor with SMAP");
      if (write && !writable && (ctx.cr0 & kCr0Wp)) return fault(pf::kPresent, "a read-only page (CR0.WP)");
    }

    // Accessed on every entry used, dirty on the leaf of a write (SDM vol. 3 4.8).
    bool changed = false;
    for (int i = 0; i < n && !changed; ++i) {
      uint64_t want = used[i].value | kAccessed | (write && i == n - 1 ? kDirty : 0);
      if (want == used[i].value) continue;
      GuestSlice s = TRY(mem.slice(GuestAddress(used[i].gpa), 8));
      uint64_t was = TRY(s.compare_exchange<uint64_t>(0, used[i].value, want, std::memory_order_acq_rel));
      changed = was != used[i].value;
    }
    if (!changed) return phys;
  }
  return make_error(EAGAIN, "linear address {:#x}: the paging structures kept changing during the walk", linear);
}

}  // namespace evmm::x86
