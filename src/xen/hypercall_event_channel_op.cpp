// __HYPERVISOR_event_channel_op: copies each op in and out of the guest around xen/evtchn.h.
#include "xen/xen_hvm_internal.h"

namespace evmm {

namespace {
// Copies the op in, runs it, and copies it back when it succeeded and has OUT fields.
template <typename T, typename Fn>
int64_t evtchn_call(const GuestVa& va, uint64_t arg, bool out, Fn&& fn) {
  T op;
  if (int r = va.read_obj(arg, &op)) return r;
  int r = fn(op);
  if (r == 0 && out) return va.write_obj(arg, op);
  return r;
}
}  // namespace

int64_t XenHvm::event_channel_op(XenCaller& c, uint64_t cmd, uint64_t arg) {
  auto& e = *evtchn_;
  const auto& va = c.va();
  switch (cmd) {
    case EVTCHNOP_alloc_unbound:
      return evtchn_call<evtchn_alloc_unbound>(va, arg, true, [&](auto& op) { return e.alloc_unbound(op); });
    case EVTCHNOP_bind_interdomain:
      return evtchn_call<evtchn_bind_interdomain>(va, arg, true, [&](auto& op) { return e.bind_interdomain(op); });
    case EVTCHNOP_bind_virq:
      return evtchn_call<evtchn_bind_virq>(va, arg, true, [&](auto& op) { return e.bind_virq(op); });
    case EVTCHNOP_bind_ipi:
      return evtchn_call<evtchn_bind_ipi>(va, arg, true, [&](auto& op) { return e.bind_ipi(op); });
    case EVTCHNOP_close: return evtchn_call<evtchn_close>(va, arg, false, [&](auto& op) { return e.close(op); });
    case EVTCHNOP_send: return evtchn_call<evtchn_send>(va, arg, false, [&](auto& op) { return e.send(op); });
    case EVTCHNOP_status:
      return evtchn_call<evtchn_status>(va, arg, true, [&](auto& op) { return e.status(op); });
    case EVTCHNOP_bind_vcpu:
      return evtchn_call<evtchn_bind_vcpu>(va, arg, false, [&](auto& op) { return e.bind_vcpu(op); });
    case EVTCHNOP_unmask: return evtchn_call<evtchn_unmask>(va, arg, false, [&](auto& op) { return e.unmask(op); });
    case EVTCHNOP_reset: return evtchn_call<evtchn_reset>(va, arg, false, [&](auto& op) { return e.reset(op); });
    case EVTCHNOP_init_control:
      return evtchn_call<evtchn_init_control>(va, arg, true, [&](auto& op) { return e.init_control(op); });
    case EVTCHNOP_expand_array:
      return evtchn_call<evtchn_expand_array>(va, arg, false, [&](auto& op) { return e.expand_array(op); });
    case EVTCHNOP_set_priority:
      return evtchn_call<evtchn_set_priority>(va, arg, false, [&](auto& op) { return e.set_priority(op); });
    default: return xen_enosys(counters_->unknown);
  }
}

}  // namespace evmm
