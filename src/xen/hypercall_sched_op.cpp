// __HYPERVISOR_sched_op: yield, block, poll and shutdown.
#include "xen/xen_hvm_internal.h"

namespace evmm {

namespace {

constexpr uint32_t kMaxPollPorts = 128;  // Xen's "fairly arbitrary limit" in do_poll

// sched_poll as a 32-bit guest lays it out (Xen's compat layout: a 32-bit handle, uint64_t 4-byte aligned).
struct __attribute__((packed)) SchedPoll32 {
  uint32_t ports;
  uint32_t nr_ports;
  uint64_t timeout;
};
static_assert(sizeof(SchedPoll32) == 16 && offsetof(sched_poll, timeout) == 16);

}  // namespace

int64_t XenHvm::block(XenCaller& c) {
  // Xen HVM blocks the vCPU until an event can be delivered to it: an upcall or any other
  // interrupt, with the guest's interrupt flag deciding, which is exactly what a halted vCPU waits
  // for in KVM. So the hypercall returns 0 and the vCPU re-enters KVM halted; KVM wakes it for
  // the upcall's MSI, its LAPIC timer, an IPI, and everything else a HLT would wake for.
  if (auto r = c.halt(); !r) LOG_WARN("vCPU {}: SCHEDOP_block: {}", c.vcpu(), r.error().message());
  return 0;
}

void XenHvm::on_pending(uint32_t, uint32_t) {
  // A poller waits for any of its ports, whichever vCPU they are bound to (Xen's poll_mask).
  for (auto& v : vcpus_)
    if (v->waiting.load()) discard_error(v->wake.signal(), counters_->discarded, "Xen: waking a poller");
}

int64_t XenHvm::poll(XenCaller& c, uint64_t arg) {
  uint64_t ports_gva, timeout;
  uint32_t nr;
  if (c.width() == XenWidth::Bits64) {
    sched_poll p;
    if (int r = c.va().read_obj(arg, &p)) return r;
    // SAFETY: only the handle's value, a guest address, is taken; nothing is dereferenced.
    ports_gva = reinterpret_cast<uint64_t>(p.ports.p);
    nr = p.nr_ports;
    timeout = p.timeout;
  } else {
    SchedPoll32 p;
    if (int r = c.va().read_obj(arg, &p)) return r;
    ports_gva = p.ports;
    nr = p.nr_ports;
    timeout = p.timeout;
  }
  if (nr > kMaxPollPorts) return -XEN_EINVAL;
  std::array<evtchn_port_t, kMaxPollPorts> ports;
  // SAFETY: ports holds kMaxPollPorts >= nr trivially copyable port numbers.
  if (int r = c.va().read(ports_gva, std::span<uint8_t>(reinterpret_cast<uint8_t*>(ports.data()), nr * sizeof(evtchn_port_t))))
    return r;
  const uint32_t max = evtchn_->max_ports();
  for (uint32_t i = 0; i < nr; i++)
    if (ports[i] >= max) return -XEN_EINVAL;
  const Evtchn2l& bits = evtchn_->bits();
  auto any_pending = [&] {
    for (uint32_t i = 0; i < nr; i++)
      if (bits.is_pending(ports[i])) return true;
    return false;
  };
  auto& v = *vcpus_[c.vcpu()];
  const uint64_t deadline = timeout ? clock_->start_mono_ns() + std::min<uint64_t>(timeout, uint64_t{1} << 62) : 0;
  v.waiting.store(true);
  for (;;) {
    auto r = c.wait(v.wake.fd(), deadline, any_pending);
    if (!r) {
      LOG_WARN("vCPU {}: SCHEDOP_poll: {}", c.vcpu(), r.error().message());
      break;
    }
    if (*r != XenWait::Readable) break;  // a port is pending, the timeout passed, or the vCPU must exit
    discard_error(v.wake.consume(), counters_->discarded, "vCPU {}: SCHEDOP_poll: reading its wake eventfd", c.vcpu());
  }
  v.waiting.store(false);
  return 0;
}

int64_t XenHvm::sched_op(XenCaller& c, uint64_t cmd, uint64_t arg) {
  switch (cmd) {
    case SCHEDOP_yield: return 0;
    case SCHEDOP_block: return block(c);
    case SCHEDOP_poll: return poll(c, arg);
    case SCHEDOP_shutdown: {
      sched_shutdown s;
      if (int r = c.va().read_obj(arg, &s)) return r;
      if (!env_.control) return 0;
      switch (s.reason) {
        case SHUTDOWN_poweroff: env_.control->request_stop(StopReason::PowerOff, 0); break;
        case SHUTDOWN_reboot: env_.control->request_stop(StopReason::Reset, 0); break;
        case SHUTDOWN_suspend: env_.control->request_stop(StopReason::Suspend, 0); break;
        case SHUTDOWN_crash:
        case SHUTDOWN_watchdog:
          LOG_INFO("Xen guest shut down with reason {}", s.reason == SHUTDOWN_crash ? "crash" : "watchdog");
          env_.control->request_stop(StopReason::Crash, 0);
          break;
        default: return -XEN_EINVAL;
      }
      return 0;
    }
    case SCHEDOP_shutdown_code: return 0;    // the reason a later crash would report; nothing keeps it
    case SCHEDOP_remote_shutdown: return -XEN_EPERM;  // only a privileged domain may
    default: return xen_enosys(counters_->unknown);
  }
}

}  // namespace evmm
