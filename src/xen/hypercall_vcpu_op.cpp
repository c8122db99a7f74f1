// __HYPERVISOR_vcpu_op and __HYPERVISOR_set_timer_op: vcpu_info placement and the singleshot timer.
#include "xen/xen_hvm_internal.h"

namespace evmm {

namespace {
// One layout for both widths, as Xen's compat checks assert; the timer's flags end a 32-bit one early.
static_assert(sizeof(vcpu_register_vcpu_info) == 16);
static_assert(offsetof(vcpu_set_singleshot_timer, flags) == 8);
constexpr size_t kSingleshotTimerSize32 = 12;
}  // namespace

int64_t XenHvm::vcpu_op(XenCaller& c, uint64_t cmd, uint64_t vcpuid, uint64_t arg) {
  if (vcpuid >= vcpus_.size()) return -XEN_ENOENT;
  const auto v = static_cast<uint32_t>(vcpuid);
  const auto& va = c.va();
  switch (cmd) {
    case VCPUOP_is_up: return vcpus_[v]->up.load() || v == 0 ? 1 : 0;
    case VCPUOP_register_vcpu_info: {
      vcpu_register_vcpu_info info;
      if (int r = va.read_obj(arg, &info)) return r;
      if (int r = pages_->register_vcpu_info(v, info.mfn, info.offset)) return r;
      write_time(v);
      upcalls_->inject(v);
      return 0;
    }
    case VCPUOP_set_singleshot_timer: {
      if (v != c.vcpu()) return -XEN_EINVAL;  // a vCPU sets only its own
      vcpu_set_singleshot_timer t{};
      size_t size = c.width() == XenWidth::Bits64 ? sizeof t : kSingleshotTimerSize32;
      // SAFETY: t is a trivially copyable local of at least size bytes; the guest fills its head.
      if (int r = va.read(arg, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&t), size))) return r;
      if ((t.flags & VCPU_SSHOTTMR_future) && t.timeout_abs_ns < system_time_ns()) return -XEN_ETIME;
      arm_timer(v, std::max<uint64_t>(t.timeout_abs_ns, 1));
      return 0;
    }
    case VCPUOP_stop_singleshot_timer:
      if (v != c.vcpu()) return -XEN_EINVAL;
      arm_timer(v, 0);
      return 0;
    case VCPUOP_stop_periodic_timer: return 0;  // there is no periodic timer to stop
    default: return xen_enosys(counters_->unknown);
  }
}

int64_t XenHvm::set_timer(XenCaller& c, uint64_t timeout_abs_ns) {
  arm_timer(c.vcpu(), timeout_abs_ns);  // 0 stops it
  return 0;
}

}  // namespace evmm
