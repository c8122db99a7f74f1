// __HYPERVISOR_hvm_op: HVM parameters (the callback vector) and per-vCPU upcall vectors.
#include "xen/xen_hvm_internal.h"

namespace evmm {

namespace {
// One layout for both widths, as Xen's compat checks assert.
static_assert(sizeof(xen_hvm_param) == 16 && offsetof(xen_hvm_param, value) == 8);
}  // namespace

int64_t XenHvm::hvm_op(XenCaller& c, uint64_t cmd, uint64_t arg) {
  const auto& va = c.va();
  switch (cmd) {
    case HVMOP_set_param:
    case HVMOP_get_param: {
      xen_hvm_param p;
      if (int r = va.read_obj(arg, &p)) return r;
      if (p.domid != DOMID_SELF && p.domid != cfg_.cpuid.domid) return -XEN_ESRCH;
      if (p.index >= HVM_NR_PARAMS) return -XEN_EINVAL;
      if (cmd == HVMOP_set_param) {
        // A guest may set only its callback; the rest belong to the toolstack (Xen: -EPERM).
        if (p.index != HVM_PARAM_CALLBACK_IRQ) return -XEN_EPERM;
        const uint64_t type = p.value >> 56;
        if (p.value != 0 && type != HVM_PARAM_CALLBACK_TYPE_VECTOR) return -XEN_EOPNOTSUPP;  // GSI and INTx callbacks
        if (p.value != 0 && (p.value & 0xff) < kXenMinVector) return -XEN_EINVAL;
        latch_width(c.width());
        upcalls_->set_callback_param(p.value);
        for (uint32_t v = 0; v < vcpus_.size(); v++) reassert_upcall(v);
        if (kernel_path_) {
          kvm_xen_hvm_attr a{};
          a.type = KVM_XEN_ATTR_TYPE_UPCALL_VECTOR;
          a.u.vector = static_cast<uint8_t>(p.value);
          if (!env_.vm->xen_hvm_set_attr(a)) return -XEN_EINVAL;
        }
        return 0;
      }
      switch (p.index) {
        case HVM_PARAM_CALLBACK_IRQ: p.value = upcalls_->callback_param(); break;
        // No xenstore and no PV console: a domain without those services.
        case HVM_PARAM_STORE_PFN:
        case HVM_PARAM_STORE_EVTCHN: p.value = 0; break;
        case HVM_PARAM_CONSOLE_PFN:
        case HVM_PARAM_CONSOLE_EVTCHN: return -XEN_ENOENT;
        default: p.value = 0; break;
      }
      return va.write_obj(arg, p);
    }
    case HVMOP_set_evtchn_upcall_vector: {
      xen_hvm_evtchn_upcall_vector_t u;
      if (int r = va.read_obj(arg, &u)) return r;
      if (u.vector < kXenMinVector) return -XEN_EINVAL;
      if (u.vcpu >= vcpus_.size()) return -XEN_ENOENT;
      upcalls_->set_vcpu_vector(u.vcpu, u.vector);
      reassert_upcall(u.vcpu);
      return 0;
    }
    default: return xen_enosys(counters_->unknown);
  }
}

}  // namespace evmm
