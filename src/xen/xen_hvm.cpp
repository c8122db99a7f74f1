#include "xen/xen_hvm.h"

#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>

#include <xen/features.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>
#include <xen/memory.h>
#include <xen/sched.h>
#include <xen/vcpu.h>
#include <xen/version.h>

#include "base/fd.h"
#include "base/log.h"
#include "boot/boot.h"
#include "vcpu/vcpu.h"
#include "xen/hypercall_abi.h"

namespace evmm {

namespace {

constexpr uint64_t kNone = ~uint64_t{0};
constexpr uint64_t kPage = kXenPageSize;
constexpr uint8_t kMinVector = 0x10;     // Xen refuses vectors below 16 (exceptions)
constexpr uint32_t kMaxPollPorts = 128;  // Xen's "fairly arbitrary limit" in do_poll
constexpr uint32_t kGrantFrames = 4;     // frames a guest may place before grant tables exist
constexpr uint64_t kMemopCmdMask = 0x3f; // memory_op: the command is the low 6 bits (MEMOP_CMD_MASK in Xen)

// The argument structs whose layout differs for a 32-bit guest: Xen's compat layouts
// (xen/include/compat, generated from the same public headers), where xen_ulong_t, xen_pfn_t and
// guest handles are 32 bits and uint64_t is 4-byte aligned.
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
struct __attribute__((packed)) SchedPoll32 {
  uint32_t ports;
  uint32_t nr_ports;
  uint64_t timeout;
};
static_assert(sizeof(SchedPoll32) == 16 && offsetof(sched_poll, timeout) == 16);
// Structs with one layout for both widths, as Xen's compat checks assert.
static_assert(sizeof(xen_hvm_param) == 16 && offsetof(xen_hvm_param, value) == 8);
static_assert(sizeof(vcpu_register_vcpu_info) == 16);
static_assert(offsetof(vcpu_set_singleshot_timer, flags) == 8);
constexpr size_t kSingleshotTimerSize32 = 12;

// e820 entries as XENMEM_memory_map hands them out (the BIOS format: addr, size, type; packed).
struct __attribute__((packed)) E820Raw {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
};
static_assert(sizeof(E820Raw) == 20);

uint64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

timespec to_timespec(uint64_t ns) {
  return {static_cast<time_t>(ns / 1'000'000'000u), static_cast<long>(ns % 1'000'000'000u)};
}

size_t time_offset(XenWidth w) {
  return w == XenWidth::Bits64 ? offsetof(vcpu_info, time) : offsetof(vcpu_info_x86_32, time);
}

// A fixed-size string field of a Xen struct, NUL-padded.
template <size_t N>
void put_string(char (&dst)[N], std::string_view s) {
  std::memset(dst, 0, N);
  std::memcpy(dst, s.data(), std::min(s.size(), N - 1));
}

}  // namespace

XenTimeScale xen_time_scale(uint64_t tsc_khz) {
  if (tsc_khz == 0) return {0, 0};
  // ns per tick = 1e6 / khz. Find shift so that mul = 2^32 * 1e6 / (khz << shift) lies in
  // [2^31, 2^32): the most precision mul can carry.
  int shift = 0;
  // mul = 2^32 * 1e6 / (khz * 2^shift), exactly, for either sign of shift.
  auto mul_for = [&](int sh) {
    unsigned __int128 num = (unsigned __int128)1'000'000u << 32;
    unsigned __int128 den = tsc_khz;
    if (sh >= 0) den <<= sh;
    else num <<= -sh;
    return num / den;
  };
  while (mul_for(shift) >= ((unsigned __int128)1 << 32) && shift < 31) shift++;
  while (mul_for(shift - 1) < ((unsigned __int128)1 << 32) && shift > -31) shift--;
  return {static_cast<uint32_t>(mul_for(shift)), static_cast<int8_t>(shift)};
}

uint64_t xen_scale_delta(uint64_t ticks, XenTimeScale s) {
  if (s.shift >= 0) ticks <<= s.shift;
  else ticks >>= -s.shift;
  return static_cast<uint64_t>(((unsigned __int128)ticks * s.mul) >> 32);
}

// ---- where the guest's pages are ----

class XenHvm::Pages final : public EvtchnPages {
 public:
  Pages(const GuestMemory& mem, uint32_t vcpus) : mem_(mem), vcpu_info_(vcpus) {
    for (auto& v : vcpu_info_) v.store(kNone);
  }

  GuestSlice shared_info() const override {
    uint64_t gpa = shared_info_.load(std::memory_order_acquire);
    if (gpa == kNone) return {};
    return at(gpa, layout().shared_info_size);
  }

  GuestSlice vcpu_info(uint32_t vcpu) const override {
    if (vcpu >= vcpu_info_.size()) return {};
    uint64_t gpa = vcpu_info_[vcpu].load(std::memory_order_acquire);
    if (gpa != kNone) return at(gpa, layout().vcpu_info_size);
    uint64_t si = shared_info_.load(std::memory_order_acquire);
    if (si == kNone || vcpu >= layout().legacy_vcpus) return {};
    // The legacy slots are shared_info's first member, an array of vcpu_info.
    return at(si + vcpu * layout().vcpu_info_size, layout().vcpu_info_size);
  }

  const Evtchn2lLayout& layout() const { return evtchn_2l_layout(width.load()); }
  GuestSlice at(uint64_t gpa, uint64_t len) const {
    auto s = mem_.slice(GuestAddress(gpa), len);
    return s ? *s : GuestSlice{};
  }

  const GuestMemory& mem_;
  std::atomic<XenWidth> width{XenWidth::Bits64};
  std::atomic<uint64_t> shared_info_{kNone};
  std::vector<std::atomic<uint64_t>> vcpu_info_;
};

struct XenHvm::VcpuState {
  VcpuState(EventFd w, UniqueFd t) : wake(std::move(w)), timer(std::move(t)) {}
  std::atomic<uint8_t> upcall_vector{0};  // HVMOP_set_evtchn_upcall_vector; 0: the domain's callback
  std::atomic<bool> up{false};
  std::atomic<bool> waiting{false};       // in SCHEDOP_poll
  EventFd wake;
  UniqueFd timer;                          // singleshot timer (CLOCK_MONOTONIC timerfd)
};

struct XenHvm::Counters {
  std::atomic<uint64_t> hypercalls{0}, unknown{0}, faults{0}, console_bytes{0}, bad_msr{0}, upcalls{0}, lost{0},
      timer_fires{0};
};

// ---- timers: one timerfd per vCPU on the device loop ----

class XenHvm::Timers final : public EventSubscriber {
 public:
  explicit Timers(XenHvm& xen) : xen_(xen) {}
  void init(EventOps& ops) override {
    for (auto& v : xen_.vcpus_)
      if (auto r = ops.add(v->timer.get(), EPOLLIN); !r) LOG_ERROR("Xen timers: {}", r.error().message());
  }
  void process(int fd, uint32_t, EventOps&) override {
    for (uint32_t i = 0; i < xen_.vcpus_.size(); i++) {
      if (xen_.vcpus_[i]->timer.get() != fd) continue;
      uint64_t expirations;
      if (::read(fd, &expirations, sizeof expirations) != sizeof expirations) return;  // disarmed meanwhile
      xen_.counters_->timer_fires.fetch_add(1, std::memory_order_relaxed);
      xen_.evtchn_->raise_virq(i, VIRQ_TIMER);
      return;
    }
  }

 private:
  XenHvm& xen_;
};

// ---- the hypercall port and the vCPU as a caller ----

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
    // Set between the exit and the next KVM_RUN, which first completes the hypercall's port read.
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
  void read(uint64_t, std::span<uint8_t> data) override {
    std::fill(data.begin(), data.end(), uint8_t{0xff});
    Vcpu* v = Vcpu::current();
    if (!v || data.size() != 4) return;  // not a stub's 4-byte read on a vCPU thread
    auto regs = v->fd().get_regs();
    if (!regs) {
      LOG_ERROR("vCPU {}: Xen hypercall: {}", v->id(), regs.error().message());
      return;
    }
    XenWidth width = vcpu_mode(*v);
    VcpuCaller caller(*v, *xen_.env_.mem, width);
    auto result = static_cast<uint32_t>(xen_.hypercall(caller, decode_hypercall(*regs, width)));
    std::memcpy(data.data(), &result, 4);
  }
  void write(uint64_t, std::span<const uint8_t>) override {}

 private:
  XenHvm& xen_;
};

// ---- setup ----

XenHvm::XenHvm(Env env, XenConfig cfg) : env_(std::move(env)), cfg_(std::move(cfg)), counters_(std::make_unique<Counters>()) {}
XenHvm::~XenHvm() = default;

Result<std::unique_ptr<XenHvm>> XenHvm::create(Env env, XenConfig cfg) {
  if (!env.mem || env.vcpus == 0) return make_error(EINVAL, "Xen: no guest memory or no vCPUs");
  if (cfg.cpuid.hypercall_pages != 1) return make_error(EINVAL, "Xen: only one hypercall page is supported");
  if (cfg.cpuid.offset != 0 && cfg.cpuid.offset != 0x100)
    return make_error(EINVAL, "Xen: the CPUID leaves go at 0x40000000 or 0x40000100, not {:#x}", 0x40000000u + cfg.cpuid.offset);
  std::unique_ptr<XenHvm> x(new XenHvm(std::move(env), std::move(cfg)));
  x->start_mono_ns_ = mono_ns();
  x->scale_ = xen_time_scale(x->env_.tsc_khz);
  x->pages_ = std::make_unique<Pages>(*x->env_.mem, x->env_.vcpus);
  for (uint32_t i = 0; i < x->env_.vcpus; i++) {
    int t = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (t < 0) return errno_error("Xen: timerfd_create");
    UniqueFd timer(t);
    x->vcpus_.push_back(std::make_unique<VcpuState>(TRY(EventFd::create()), std::move(timer)));
  }
  XenHvm* self = x.get();
  EventChannels::Options opts{
      .width = XenWidth::Bits64,
      .vcpus = x->env_.vcpus,
      .domid = x->cfg_.cpuid.domid,
      .backend_domid = x->cfg_.backend_domid,
      .inject = [self](uint32_t vcpu) { self->inject(vcpu); },
      .kernel_commit = [self](std::span<const kvm_xen_hvm_attr> ports) -> Result<void> {
        return self->kernel_path_ ? self->commit_kernel_ports(ports) : Result<void>{};
      },
      .on_pending = [self](uint32_t vcpu, uint32_t port) { self->on_pending(vcpu, port); },
  };
  x->evtchn_.emplace(TRY(EventChannels::create(*x->pages_, std::move(opts))));
  x->timers_ = std::make_shared<Timers>(*x);
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

void XenHvm::attach(Vcpu& vcpu) {
  vcpu.set_msr_handler([this](Vcpu& v, bool write, uint32_t index, uint64_t& value) {
    return on_msr(v.id(), vcpu_mode(v), write, index, value);
  });
  vcpu.set_xen_hypercall_handler([this](Vcpu& v, const exit::XenHypercall& h) {
    XenWidth width = h.longmode ? XenWidth::Bits64 : XenWidth::Bits32;
    VcpuCaller caller(v, *env_.mem, width);
    return static_cast<uint64_t>(hypercall(caller, {h.nr, {h.args[0], h.args[1], h.args[2], h.args[3], h.args[4]}}));
  });
}

std::shared_ptr<EventSubscriber> XenHvm::timers() { return timers_; }

void XenHvm::set_time_reference(uint64_t tsc, uint64_t mono) {
  ref_tsc_.store(tsc);
  ref_system_ns_.store(mono > start_mono_ns_ ? mono - start_mono_ns_ : 0);
}

uint64_t XenHvm::system_time_ns() const { return mono_ns() - start_mono_ns_; }

XenStats XenHvm::stats() const {
  auto& c = *counters_;
  return {c.hypercalls.load(), c.unknown.load(), c.faults.load(),   c.console_bytes.load(),
          c.bad_msr.load(),    c.upcalls.load(), c.lost.load(),     c.timer_fires.load(),
          evtchn_->stats()};
}

// ---- delivery ----

void XenHvm::inject(uint32_t vcpu) {
  if (vcpu >= vcpus_.size()) return;
  auto& v = *vcpus_[vcpu];
  uint8_t vector = v.upcall_vector.load(std::memory_order_acquire);
  if (!vector) {
    uint64_t cb = callback_param_.load(std::memory_order_acquire);
    if ((cb >> 56) == HVM_PARAM_CALLBACK_TYPE_VECTOR) vector = static_cast<uint8_t>(cb);
  }
  if (!vector) {
    // No upcall set up yet: the pending bits stay for the guest to find when it sets one.
    counters_->lost.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  counters_->upcalls.fetch_add(1, std::memory_order_relaxed);
  if (env_.inject_override) {
    env_.inject_override(vcpu, vector);
  } else if (env_.vm) {
    // A fixed, edge MSI to the vCPU's APIC ID (= its index), physical destination mode.
    kvm_msi msi{};
    msi.address_lo = 0xfee00000u | (vcpu << 12);
    msi.data = vector;
    if (auto r = env_.vm->signal_msi(msi); !r) LOG_WARN("Xen upcall to vCPU {}: {}", vcpu, r.error().message());
  }
  if (env_.notifier) env_.notifier->notify();
}

void XenHvm::reassert_upcall(uint32_t vcpu) {
  // Xen asserts the new callback for a vCPU whose upcall is already flagged (hvm_assert_evtchn_irq):
  // events that arrived before the guest chose a vector are not stranded behind the flag.
  auto info = pages_->vcpu_info(vcpu);
  size_t off = pages_->layout().upcall_pending_offset;
  if (info.load<uint8_t>(off, std::memory_order_seq_cst).value_or(0)) inject(vcpu);
}

void XenHvm::on_pending(uint32_t, uint32_t) {
  // A poller waits for any of its ports, whichever vCPU they are bound to (Xen's poll_mask).
  for (auto& v : vcpus_)
    if (v->waiting.load()) (void)v->wake.signal();
}

void XenHvm::latch_width(XenWidth w) {
  if (pages_->width.load() == w) return;
  if (auto r = evtchn_->set_width(w); !r) {
    LOG_WARN("Xen: the guest switched to {}-bit mode, but {}", w == XenWidth::Bits64 ? 64 : 32, r.error().message());
    return;
  }
  pages_->width.store(w);
}

void XenHvm::write_time(uint32_t vcpu) {
  auto info = pages_->vcpu_info(vcpu);
  size_t off = time_offset(pages_->width.load());
  if (info.size() < off + sizeof(vcpu_time_info)) return;
  // A 32-bit guest's vcpu_info may sit at any 4-byte boundary, so the struct is written bytewise;
  // its version word is 4-byte aligned either way. The seqlock protocol: odd while being written.
  auto version = info.load<uint32_t>(off, std::memory_order_relaxed);
  if (!version) return;
  uint32_t v = *version | 1;
  (void)info.store<uint32_t>(off, v, std::memory_order_seq_cst);
  vcpu_time_info f{};
  f.tsc_timestamp = ref_tsc_.load();
  f.system_time = ref_system_ns_.load();
  f.tsc_to_system_mul = scale_.mul;
  f.tsc_shift = scale_.shift;
  f.flags = XEN_PVCLOCK_TSC_STABLE_BIT;
  constexpr size_t kBody = offsetof(vcpu_time_info, tsc_timestamp);
  // SAFETY: f is a trivially copyable local; its bytes from kBody on are the body.
  (void)info.copy_in(off + kBody, std::span(reinterpret_cast<const uint8_t*>(&f) + kBody, sizeof f - kBody));
  (void)info.store<uint32_t>(off, v + 1, std::memory_order_seq_cst);
}

void XenHvm::arm_timer(uint32_t vcpu, uint64_t timeout_abs_ns) {
  itimerspec its{};
  if (timeout_abs_ns) {
    // A deadline in the past fires at once (the smallest absolute time that is still armed).
    uint64_t at = start_mono_ns_ + std::min<uint64_t>(timeout_abs_ns, uint64_t{1} << 62);
    its.it_value = to_timespec(std::max<uint64_t>(at, 1));
  }
  if (timerfd_settime(vcpus_[vcpu]->timer.get(), TFD_TIMER_ABSTIME, &its, nullptr) < 0)
    LOG_WARN("Xen timer of vCPU {}: timerfd_settime: {}", vcpu, std::strerror(errno));
}

// ---- the guest interface ----

bool XenHvm::on_msr(uint32_t vcpu, XenWidth mode, bool write, uint32_t index, uint64_t value) {
  if (!write || index != cfg_.cpuid.hypercall_msr) return false;
  const uint64_t page_nr = value & (kPage - 1), gpa = value & ~(kPage - 1);
  auto page = env_.mem->slice(GuestAddress(gpa), kPage);
  if (page_nr >= cfg_.cpuid.hypercall_pages || !page) {
    counters_->bad_msr.fetch_add(1, std::memory_order_relaxed);
    LOG_WARN("vCPU {}: Xen hypercall page at {:#x} refused: {}", vcpu, value,
             page ? "no such page index" : "not guest RAM");
    return false;
  }
  std::array<uint8_t, kXenPageSize> stubs;
  write_hypercall_page(stubs, mode);
  (void)page->copy_in(0, stubs);  // a whole page inside guest RAM, checked above
  latch_width(mode);
  vcpus_[vcpu]->up.store(true);
  LOG_DEBUG("vCPU {}: Xen hypercall page at {:#x} ({}-bit)", vcpu, gpa, mode == XenWidth::Bits64 ? 64 : 32);
  return true;
}

namespace {
int64_t enosys(std::atomic<uint64_t>& unknown) {
  unknown.fetch_add(1, std::memory_order_relaxed);
  return -XEN_ENOSYS;
}
}  // namespace

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
      r = enosys(counters_->unknown);
      break;
  }
  if (r == -XEN_EFAULT) counters_->faults.fetch_add(1, std::memory_order_relaxed);
  return r;
}

int64_t XenHvm::xen_version(XenCaller& c, uint64_t cmd, uint64_t arg) {
  const auto& va = c.va();
  switch (cmd) {
    case XENVER_version: return (int64_t{cfg_.cpuid.major} << 16) | cfg_.cpuid.minor;
    case XENVER_extraversion: {
      xen_extraversion_t v;
      put_string(v, cfg_.extraversion);
      return va.write_obj(arg, v);
    }
    case XENVER_compile_info: {
      xen_compile_info_t v;
      put_string(v.compiler, "evmm");
      put_string(v.compile_by, "evmm");
      put_string(v.compile_domain, "");
      put_string(v.compile_date, __DATE__);
      return va.write_obj(arg, v);
    }
    case XENVER_capabilities: {
      xen_capabilities_info_t v;
      put_string(v, "hvm-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p");
      return va.write_obj(arg, v);
    }
    case XENVER_changeset: {
      xen_changeset_info_t v;
      put_string(v, "evmm");
      return va.write_obj(arg, v);
    }
    case XENVER_get_features: {
      xen_feature_info_t f;
      if (int r = va.read_obj(arg, &f)) return r;
      if (f.submap_idx >= XENFEAT_NR_SUBMAPS) return -XEN_EINVAL;
      f.submap = (1u << XENFEAT_hvm_callback_vector) | (1u << XENFEAT_hvm_safe_pvclock);
      return va.write_obj(arg, f);
    }
    case XENVER_pagesize: return kPage;
    case XENVER_guest_handle: {
      xen_domain_handle_t h{};
      return va.write_obj(arg, h);
    }
    case XENVER_commandline:
    case XENVER_build_id: return -XEN_EPERM;  // Xen's XSM answer to an unprivileged domain
    default: return enosys(counters_->unknown);
  }
}

int64_t XenHvm::console_io(XenCaller& c, uint64_t cmd, uint64_t count, uint64_t buffer) {
  switch (cmd) {
    case CONSOLEIO_write: {
      // Streamed a page at a time straight from guest memory: the length costs time, never memory.
      // Xen's count is an unsigned int.
      uint64_t n = count & 0xffffffffu;
      return c.va().for_each_piece(buffer, n, [&](std::span<const uint8_t> piece) {
        if (env_.console) env_.console(piece);
        counters_->console_bytes.fetch_add(piece.size(), std::memory_order_relaxed);
        return true;
      });
    }
    case CONSOLEIO_read: return 0;  // no input for a Xen console here
    default: return enosys(counters_->unknown);
  }
}

int64_t XenHvm::block(XenCaller& c) {
  // Xen HVM blocks the vCPU until an event can be delivered to it: an upcall or any other
  // interrupt, with the guest's interrupt flag deciding, which is exactly what a halted vCPU waits
  // for in KVM. So the hypercall returns 0 and the vCPU re-enters KVM halted; KVM wakes it for
  // the upcall's MSI, its LAPIC timer, an IPI, and everything else a HLT would wake for.
  if (auto r = c.halt(); !r) LOG_WARN("vCPU {}: SCHEDOP_block: {}", c.vcpu(), r.error().message());
  return 0;
}

int64_t XenHvm::poll(XenCaller& c, uint64_t arg) {
  uint64_t ports_gva, timeout;
  uint32_t nr;
  if (c.width() == XenWidth::Bits64) {
    sched_poll p;
    if (int r = c.va().read_obj(arg, &p)) return r;
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
  const uint64_t deadline = timeout ? start_mono_ns_ + std::min<uint64_t>(timeout, uint64_t{1} << 62) : 0;
  v.waiting.store(true);
  for (;;) {
    auto r = c.wait(v.wake.fd(), deadline, any_pending);
    if (!r) {
      LOG_WARN("vCPU {}: SCHEDOP_poll: {}", c.vcpu(), r.error().message());
      break;
    }
    if (*r != XenWait::Readable) break;  // a port is pending, the timeout passed, or the vCPU must exit
    (void)v.wake.consume();
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
    default: return enosys(counters_->unknown);
  }
}

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
      const uint64_t gpa = uint64_t{m.gpfn} * kPage;
      auto page = env_.mem->slice(GuestAddress(gpa), kPage);
      if (!page || m.gpfn > (~uint64_t{0} >> 12)) return -XEN_EINVAL;
      if (m.space == XENMAPSPACE_shared_info) {
        if (m.idx != 0) return -XEN_EINVAL;
        latch_width(c.width());
        // The one shared_info moves: what the guest saw at the old place is seen at the new.
        uint64_t old = pages_->shared_info_.load();
        if (old == gpa) return 0;
        auto before = old == kNone ? GuestSlice{} : pages_->at(old, kPage);
        // Both are whole pages inside guest RAM, checked above, so neither copy can fail.
        if (before.empty()) (void)page->fill(0, 0, kPage);
        else (void)page->copy_from(before);
        pages_->shared_info_.store(gpa, std::memory_order_release);
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
        (void)page->fill(0, 0, kPage);  // a whole page inside guest RAM, checked above
        return 0;
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
      return static_cast<int64_t>(env_.mem->ram_bytes() / kPage);
    }
    default: return enosys(counters_->unknown);
  }
}

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
        if (p.value != 0 && (p.value & 0xff) < kMinVector) return -XEN_EINVAL;
        latch_width(c.width());
        callback_param_.store(p.value, std::memory_order_release);
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
        case HVM_PARAM_CALLBACK_IRQ: p.value = callback_param_.load(); break;
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
      if (u.vector < kMinVector) return -XEN_EINVAL;
      if (u.vcpu >= vcpus_.size()) return -XEN_ENOENT;
      vcpus_[u.vcpu]->upcall_vector.store(u.vector, std::memory_order_release);
      reassert_upcall(u.vcpu);
      return 0;
    }
    default: return enosys(counters_->unknown);
  }
}

int64_t XenHvm::vcpu_op(XenCaller& c, uint64_t cmd, uint64_t vcpuid, uint64_t arg) {
  if (vcpuid >= vcpus_.size()) return -XEN_ENOENT;
  const auto v = static_cast<uint32_t>(vcpuid);
  const auto& va = c.va();
  switch (cmd) {
    case VCPUOP_is_up: return vcpus_[v]->up.load() || v == 0 ? 1 : 0;
    case VCPUOP_register_vcpu_info: {
      vcpu_register_vcpu_info info;
      if (int r = va.read_obj(arg, &info)) return r;
      const auto& layout = pages_->layout();
      if (pages_->vcpu_info_[v].load() != kNone) return -XEN_EINVAL;  // once per vCPU, as in Xen
      if (info.offset > kPage - layout.vcpu_info_size || info.offset % (layout.word_bits / 8) != 0 ||
          info.mfn > (~uint64_t{0} >> 12))
        return -XEN_EINVAL;
      const uint64_t gpa = info.mfn * kPage + info.offset;
      auto dst = pages_->at(gpa, layout.vcpu_info_size);
      if (dst.empty()) return -XEN_EINVAL;
      // Xen's map_vcpu_info: the new place starts as a copy of the old, with every selector bit
      // and the upcall flag set, so that the guest rescans whatever was pending.
      auto old = pages_->vcpu_info(v);
      // dst is vcpu_info_size bytes, as old is, and holds both fields: no step below can fail.
      if (old.empty()) (void)dst.fill(0, 0, dst.size());
      else (void)dst.copy_from(old);
      (void)dst.fill(layout.pending_sel_offset, 0xff, layout.word_bits / 8);
      (void)dst.store<uint8_t>(layout.upcall_pending_offset, 1, std::memory_order_relaxed);
      pages_->vcpu_info_[v].store(gpa, std::memory_order_release);
      write_time(v);
      inject(v);
      return 0;
    }
    case VCPUOP_set_singleshot_timer: {
      if (v != c.vcpu()) return -XEN_EINVAL;  // a vCPU sets only its own
      vcpu_set_singleshot_timer t{};
      size_t size = c.width() == XenWidth::Bits64 ? sizeof t : kSingleshotTimerSize32;
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
    default: return enosys(counters_->unknown);
  }
}

int64_t XenHvm::set_timer(XenCaller& c, uint64_t timeout_abs_ns) {
  arm_timer(c.vcpu(), timeout_abs_ns);  // 0 stops it
  return 0;
}

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
    default: return enosys(counters_->unknown);
  }
}

}  // namespace evmm
