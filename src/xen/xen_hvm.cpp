// XenHvm's assembly and dispatch: creation of its pieces, the kernel path's port table, and the one
// switch that hands each hypercall to its family (hypercall_*.cpp). See xen_hvm.h for the whole.
#include "xen/xen_hvm_internal.h"

namespace evmm {

XenHvm::XenHvm(Env env, XenConfig cfg) : env_(std::move(env)), cfg_(std::move(cfg)), counters_(std::make_unique<Counters>()) {}
XenHvm::~XenHvm() = default;

Result<std::unique_ptr<XenHvm>> XenHvm::create(Env env, XenConfig cfg) {
  if (!env.mem || env.vcpus == 0) return make_error(EINVAL, "Xen: no guest memory or no vCPUs");
  if (cfg.cpuid.hypercall_pages != 1) return make_error(EINVAL, "Xen: only one hypercall page is supported");
  if (cfg.cpuid.offset != 0 && cfg.cpuid.offset != 0x100)
    return make_error(EINVAL, "Xen: the CPUID leaves go at 0x40000000 or 0x40000100, not {:#x}", 0x40000000u + cfg.cpuid.offset);
  std::unique_ptr<XenHvm> x(new XenHvm(std::move(env), std::move(cfg)));
  x->clock_ = std::make_unique<XenClock>(x->env_.tsc_khz);
  x->pages_ = std::make_unique<XenSharedPages>(*x->env_.mem, x->env_.vcpus);
  x->upcalls_ = std::make_unique<XenUpcalls>(
      x->env_.vcpus, XenUpcalls::Sink{x->env_.vm, x->env_.notifier, x->env_.inject_override});
  for (uint32_t i = 0; i < x->env_.vcpus; i++) {
    x->vcpus_.push_back(std::make_unique<VcpuState>(TRY(EventFd::create())));
  }
  XenHvm* self = x.get();
  EventChannels::Options opts{
      .width = XenWidth::Bits64,
      .vcpus = x->env_.vcpus,
      .domid = x->cfg_.cpuid.domid,
      .backend_domid = x->cfg_.backend_domid,
      .inject = [self](uint32_t vcpu) { self->upcalls_->inject(vcpu); },
      .kernel_commit = [self](std::span<const kvm_xen_hvm_attr> ports) -> Result<void> {
        return self->kernel_path_ ? self->commit_kernel_ports(ports) : Result<void>{};
      },
      .on_pending = [self](uint32_t vcpu, uint32_t port) { self->on_pending(vcpu, port); },
  };
  x->evtchn_.emplace(TRY(EventChannels::create(*x->pages_, std::move(opts))));
  x->timers_ = TRY(XenTimers::create(x->env_.vcpus, x->clock_->start_mono_ns(), [self](uint32_t vcpu) {
    self->evtchn_->raise_virq(vcpu, VIRQ_TIMER);
  }));
  return x;
}

bool XenHvm::kernel_support_usable(int flags) {
  constexpr int kNeeded = KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL | KVM_XEN_HVM_CONFIG_SHARED_INFO |
                          KVM_XEN_HVM_CONFIG_EVTCHN_SEND;
  return flags > 0 && (flags & kNeeded) == kNeeded;
}

Result<void> XenHvm::commit_kernel_ports(std::span<const kvm_xen_hvm_attr> ports) {
  // One reset, then every port: the kernel's table is replaced as a whole.
  kvm_xen_hvm_attr reset{};
  reset.type = KVM_XEN_ATTR_TYPE_EVTCHN;
  reset.u.evtchn.flags = KVM_XEN_EVTCHN_RESET;
  TRY(env_.vm->xen_hvm_set_attr(reset));
  for (const auto& p : ports) TRY(env_.vm->xen_hvm_set_attr(p));
  return {};
}

std::shared_ptr<EventSubscriber> XenHvm::timers() { return timers_; }

void XenHvm::set_time_reference(uint64_t tsc, uint64_t mono) { clock_->set_reference(tsc, mono); }

uint64_t XenHvm::system_time_ns() const { return clock_->now_ns(); }

XenStats XenHvm::stats() const {
  auto& c = *counters_;
  XenStats s{c.hypercalls.load(), c.unknown.load(),     c.faults.load(),      c.console_bytes.load(),
             c.bad_msr.load(),    upcalls_->injected(), upcalls_->lost(), timers_->fires(),
             c.discarded.load(),  evtchn_->stats()};
  return s;
}

void XenHvm::write_time(uint32_t vcpu) {
  discard_error(clock_->write(pages_->vcpu_info(vcpu), pages_->width()), counters_->discarded,
                "Xen: writing vCPU {}'s vcpu_time_info", vcpu);
}

void XenHvm::latch_width(XenWidth w) {
  if (pages_->width() == w) return;
  if (auto r = evtchn_->set_width(w); !r) {
    LOG_WARN("Xen: the guest switched to {}-bit mode, but {}", w == XenWidth::Bits64 ? 64 : 32, r.error().message());
    return;
  }
  pages_->set_width(w);
}

int64_t XenHvm::hypercall(XenCaller& c, const HypercallArgs& h) {
  counters_->hypercalls.fetch_add(1, std::memory_order_relaxed);
  if (c.vcpu() >= vcpus_.size()) return -XEN_EINVAL;  // a caller the VM does not have
  vcpus_[c.vcpu()]->up.store(true);
  const auto& a = h.a;
  int64_t r;
  switch (h.nr) {
    case __HYPERVISOR_xen_version: r = xen_version(c, a[0], a[1]); break;
    case __HYPERVISOR_console_io: r = console_io(c, a[0], a[1], a[2]); break;
    case __HYPERVISOR_sched_op: r = sched_op(c, a[0], a[1]); break;
    case __HYPERVISOR_memory_op: r = memory_op(c, a[0], a[1]); break;
    case __HYPERVISOR_hvm_op: r = hvm_op(c, a[0], a[1]); break;
    case __HYPERVISOR_vcpu_op: r = vcpu_op(c, a[0], a[1], a[2]); break;
    case __HYPERVISOR_event_channel_op: r = event_channel_op(c, a[0], a[1]); break;
    case __HYPERVISOR_set_timer_op:
      // A 32-bit guest passes the 64-bit deadline in two registers, low half first.
      r = set_timer(c, c.width() == XenWidth::Bits64 ? a[0] : (a[0] | (a[1] << 32)));
      break;
    default:  // grant_table_op included: there are no grant tables yet
      r = xen_enosys(counters_->unknown);
      break;
  }
  if (r == -XEN_EFAULT) counters_->faults.fetch_add(1, std::memory_order_relaxed);
  return r;
}

}  // namespace evmm
