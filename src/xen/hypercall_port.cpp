// The hypercall transport (QEMU: kvm_xen_handle_exit in target/i386/kvm/xen-emu.c): the MSR write that
// installs the stub page, the port every stub writes, the vCPU as a caller with its ABI registers,
// and the kernel path's KVM_EXIT_XEN. The stubs and registers themselves are xen/hypercall_abi.h.
#include "vcpu/vcpu.h"
#include "xen/xen_hvm_internal.h"

namespace evmm {

namespace {

XenWidth vcpu_mode(const Vcpu& v) {
  auto s = v.fd().get_sregs();
  // Long mode active and a 64-bit code segment; anything else passes arguments the 32-bit way.
  return s && (s->efer & (1u << 10)) && s->cs.l ? XenWidth::Bits64 : XenWidth::Bits32;
}

class VcpuCaller final : public XenCaller {
 public:
  VcpuCaller(Vcpu& v, const GuestMemory& mem, XenWidth width)
      : v_(v),
        width_(width),
        va_(mem,
            [&v](uint64_t gva) -> std::optional<GuestPage> {
              auto t = v.fd().translate(gva);
              if (!t || !t->valid) return std::nullopt;
              return GuestPage{t->physical_address, t->writeable != 0};
            },
            width == XenWidth::Bits64 ? ~uint64_t{0} : 0xffffffffu) {}

  uint32_t vcpu() const override { return v_.id(); }
  XenWidth width() const override { return width_; }
  const GuestVa& va() const override { return va_; }
  Result<void> halt() override {
    // Set between the exit and the next KVM_RUN, which first completes the hypercall's port write.
    return v_.fd().set_mp_state(kvm_mp_state{KVM_MP_STATE_HALTED});
  }
  Result<XenWait> wait(int fd, uint64_t deadline, const std::function<bool()>& done) override {
    timespec ts{};
    if (deadline) {
      uint64_t now = mono_ns();
      ts = to_timespec(deadline > now ? deadline - now : 0);
    }
    auto end = TRY(v_.sleep_once(fd, deadline ? &ts : nullptr, [&]() -> Result<bool> { return done(); }));
    switch (end) {
      case Vcpu::SleepEnd::Done: return XenWait::Done;
      case Vcpu::SleepEnd::Readable: return XenWait::Readable;
      case Vcpu::SleepEnd::TimedOut: return XenWait::TimedOut;
      case Vcpu::SleepEnd::Kicked: return XenWait::Kicked;
    }
    return XenWait::Kicked;
  }

 private:
  Vcpu& v_;
  XenWidth width_;
  GuestVa va_;
};

}  // namespace

class XenHvm::HypercallPort final : public BusDevice {
 public:
  explicit HypercallPort(XenHvm& xen) : xen_(xen) {}
  void read(const BusRead& io) override { std::fill(io.data.begin(), io.data.end(), uint8_t{0xff}); }
  // A stub's 4-byte write: the hypercall, its result written into RAX before KVM completes the write
  // (KVM does not touch RAX for an OUT). Anything else on the port is ignored.
  void write(const BusWrite& io) override {
    Vcpu* v = xen_.env_.vcpu ? xen_.env_.vcpu(io.vcpu) : nullptr;
    if (!v || io.data.size() != 4) return;
    auto regs = v->fd().get_regs();
    if (!regs) {
      LOG_ERROR("vCPU {}: Xen hypercall: {}", v->id(), regs.error().message());
      return;
    }
    XenWidth width = vcpu_mode(*v);
    VcpuCaller caller(*v, *xen_.env_.mem, width);
    regs->rax = hypercall_rax(xen_.hypercall(caller, decode_hypercall(*regs, width)), width);
    if (auto r = v->fd().set_regs(*regs); !r)
      LOG_ERROR("vCPU {}: Xen hypercall result: {}", v->id(), r.error().message());
  }

 private:
  XenHvm& xen_;
};

Result<void> XenHvm::install(IoBus& pio) {
  if (env_.vm && cfg_.kernel_accel && kernel_support_usable(env_.vm->check_extension(KVM_CAP_XEN_HVM))) {
    kvm_xen_hvm_config c{};
    c.flags = KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL | KVM_XEN_HVM_CONFIG_EVTCHN_SEND;
    c.msr = cfg_.cpuid.hypercall_msr;
    TRY(env_.vm->xen_hvm_config(c));
    kernel_path_ = true;
    // The table exists already; from now on its kernel ports go to KVM too.
    TRY(commit_kernel_ports(evtchn_->kernel_ports()));
    LOG_INFO("Xen: using the kernel's Xen support (KVM_CAP_XEN_HVM)");
    return {};
  }
  TRY(pio.insert(kXenHypercallPort, 4, std::make_shared<HypercallPort>(*this), "xen-hypercall"));
  if (!env_.vm) return {};
  // Writes of the hypercall MSR exit to userspace; everything else stays with KVM.
  if (env_.vm->check_extension(KVM_CAP_X86_USER_SPACE_MSR) <= 0 || env_.vm->check_extension(KVM_CAP_X86_MSR_FILTER) <= 0)
    return make_error(ENOTSUP, "Xen needs KVM_CAP_X86_USER_SPACE_MSR and KVM_CAP_X86_MSR_FILTER, which this host lacks");
  TRY(env_.vm->enable_cap(KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_FILTER));
  static uint8_t deny = 0;  // one bit, clear: the access is filtered
  kvm_msr_filter filter{};
  filter.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
  filter.ranges[0] = {.flags = KVM_MSR_FILTER_WRITE, .nmsrs = 1, .base = cfg_.cpuid.hypercall_msr, .bitmap = &deny};
  TRY(env_.vm->set_msr_filter(filter));
  return {};
}

void XenHvm::add_vcpu_hooks(VcpuHooks& hooks) {
  hooks.msr = [this](Vcpu& v, bool write, uint32_t index, uint64_t& value) {
    return on_msr(v.id(), vcpu_mode(v), write, index, value);
  };
  hooks.hypercall = [this](Vcpu& v, const exit::XenHypercall& h) {
    XenWidth width = h.longmode ? XenWidth::Bits64 : XenWidth::Bits32;
    VcpuCaller caller(v, *env_.mem, width);
    return static_cast<uint64_t>(hypercall(caller, {h.nr, {h.args[0], h.args[1], h.args[2], h.args[3], h.args[4]}}));
  };
}

bool XenHvm::on_msr(uint32_t vcpu, XenWidth mode, bool write, uint32_t index, uint64_t value) {
  if (!write || index != cfg_.cpuid.hypercall_msr) return false;
  const uint64_t page_nr = value & (kXenPage - 1), gpa = value & ~(kXenPage - 1);
  auto page = env_.mem->slice(GuestAddress(gpa), kXenPage);
  if (page_nr >= cfg_.cpuid.hypercall_pages || !page) {
    counters_->bad_msr.fetch_add(1, std::memory_order_relaxed);
    LOG_WARN("vCPU {}: Xen hypercall page at {:#x} refused: {}", vcpu, value,
             page ? "no such page index" : "not guest RAM");
    return false;
  }
  std::array<uint8_t, kXenPageSize> stubs;
  write_hypercall_page(stubs);
  if (auto r = page->copy_in(0, stubs); !r) {
    counters_->bad_msr.fetch_add(1, std::memory_order_relaxed);
    LOG_WARN("vCPU {}: Xen hypercall page at {:#x} refused: {}", vcpu, value, r.error().message());
    return false;
  }
  latch_width(mode);
  vcpus_[vcpu]->up.store(true);
  LOG_DEBUG("vCPU {}: Xen hypercall page at {:#x} ({}-bit)", vcpu, gpa, mode == XenWidth::Bits64 ? 64 : 32);
  return true;
}

}  // namespace evmm
