// __HYPERVISOR_memory_op: placing shared_info and grant frames, the memory map, and reservations.
#include "boot/boot.h"
#include "xen/xen_hvm_internal.h"

namespace evmm {

namespace {

constexpr uint32_t kGrantFrames = 4;     // frames a guest may place before grant tables exist
constexpr uint64_t kMemopCmdMask = 0x3f; // memory_op: the command is the low 6 bits (MEMOP_CMD_MASK in Xen)

// The argument structs whose layout differs for a 32-bit guest: Xen's compat layouts
// (xen/include/compat), where xen_ulong_t, xen_pfn_t and guest handles are 32 bits.
struct AddToPhysmap32 {
  uint16_t domid;
  uint16_t size;
  uint32_t space;
  uint32_t idx;
  uint32_t gpfn;
};
static_assert(sizeof(AddToPhysmap32) == 16 && sizeof(xen_add_to_physmap) == 24);
struct MemoryMap32 {
  uint32_t nr_entries;
  uint32_t buffer;
};

// e820 entries as XENMEM_memory_map hands them out (the BIOS format: addr, size, type; packed).
struct __attribute__((packed)) E820Raw {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
};
static_assert(sizeof(E820Raw) == 20);

}  // namespace

int64_t XenHvm::memory_op(XenCaller& c, uint64_t cmd, uint64_t arg) {
  const auto& va = c.va();
  const domid_t self = cfg_.cpuid.domid;
  auto own = [&](domid_t d) { return d == DOMID_SELF || d == self; };
  switch (cmd & kMemopCmdMask) {
    case XENMEM_add_to_physmap: {
      xen_add_to_physmap m{};
      if (c.width() == XenWidth::Bits64) {
        if (int r = va.read_obj(arg, &m)) return r;
      } else {
        AddToPhysmap32 m32;
        if (int r = va.read_obj(arg, &m32)) return r;
        m = {m32.domid, m32.size, m32.space, m32.idx, m32.gpfn};
      }
      if (!own(m.domid)) return -XEN_ESRCH;
      const uint64_t gpa = uint64_t{m.gpfn} * kXenPage;
      auto page = env_.mem->slice(GuestAddress(gpa), kXenPage);
      if (!page || m.gpfn > (~uint64_t{0} >> 12)) return -XEN_EINVAL;
      if (m.space == XENMAPSPACE_shared_info) {
        if (m.idx != 0) return -XEN_EINVAL;
        latch_width(c.width());
        if (!pages_->move_shared_info(gpa)) return 0;  // already there
        for (uint32_t v = 0; v < vcpus_.size(); v++) write_time(v);
        if (kernel_path_) {
          kvm_xen_hvm_attr a{};
          a.type = KVM_XEN_ATTR_TYPE_SHARED_INFO;
          a.u.shared_info.gfn = m.gpfn;
          if (!env_.vm->xen_hvm_set_attr(a)) return -XEN_EINVAL;
        }
        return 0;
      }
      if (m.space == XENMAPSPACE_grant_table) {
        // The frame is placed (zeroed: no grants); grant_table_op stays -ENOSYS until grant tables
        // exist. Version 1 only: there are no status frames.
        if ((m.idx & XENMAPIDX_grant_table_status) || m.idx >= kGrantFrames) return -XEN_EINVAL;
        return page->fill(0, 0, kXenPage) ? 0 : -XEN_EINVAL;
      }
      return -XEN_EINVAL;  // gmfn spaces: evmm's guest memory does not move
    }
    case XENMEM_memory_map: {
      uint32_t nr;
      uint64_t buffer;
      if (c.width() == XenWidth::Bits64) {
        xen_memory_map m;
        if (int r = va.read_obj(arg, &m)) return r;
        nr = m.nr_entries;
        // SAFETY: only the handle's value, a guest address, is taken; nothing is dereferenced.
        buffer = reinterpret_cast<uint64_t>(m.buffer.p);
      } else {
        MemoryMap32 m;
        if (int r = va.read_obj(arg, &m)) return r;
        nr = m.nr_entries;
        buffer = m.buffer;
      }
      auto map = build_e820(*env_.mem);
      uint32_t n = std::min<uint32_t>(nr, static_cast<uint32_t>(map.size()));
      for (uint32_t i = 0; i < n; i++) {
        E820Raw e{map[i].addr, map[i].size, map[i].type};
        if (int r = va.write_obj(buffer + i * sizeof e, e)) return r;
      }
      return va.write_obj(arg, n);  // nr_entries is the first member in both layouts
    }
    case XENMEM_current_reservation:
    case XENMEM_maximum_reservation: {
      domid_t d;
      if (int r = va.read_obj(arg, &d)) return r;
      if (!own(d)) return -XEN_ESRCH;
      return static_cast<int64_t>(env_.mem->ram_bytes() / kXenPage);
    }
    default: return xen_enosys(counters_->unknown);
  }
}

}  // namespace evmm
