#include "kvm/system.h"

#include <fcntl.h>
#include <sys/ioctl.h>

#include "kvm/vm_fd.h"

namespace evmm {

kvm_cpuid_entry2* CpuidTable::find(uint32_t function, uint32_t index) {
  for (auto& e : entries_) {
    if (e.function != function) continue;
    if (!(e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e.index == index) return &e;
  }
  return nullptr;
}

Result<System> System::open(const char* path) {
  int fd = ::open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return errno_error("open {}", path);
  System sys{UniqueFd(fd)};
  if (int v = sys.api_version(); v != KVM_API_VERSION)
    return make_error(ENOTSUP, "{}: KVM API version {} (evmm needs {})", path, v, KVM_API_VERSION);
  return sys;
}

int System::api_version() const { return ::ioctl(fd_.get(), KVM_GET_API_VERSION, 0); }

int System::check_extension(int cap) const {
  int r = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
  return r < 0 ? 0 : r;
}

Result<int> System::vcpu_mmap_size() const {
  int r = ::ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (r < 0) return errno_error("KVM_GET_VCPU_MMAP_SIZE");
  return r;
}

Result<CpuidTable> System::supported_cpuid() const {
  // KVM says E2BIG until the buffer is large enough.
  for (uint32_t n = 64; n <= 4096; n *= 2) {
    std::vector<uint8_t> buf(sizeof(kvm_cpuid2) + n * sizeof(kvm_cpuid_entry2));
    auto* c = reinterpret_cast<kvm_cpuid2*>(buf.data());
    c->nent = n;
    if (::ioctl(fd_.get(), KVM_GET_SUPPORTED_CPUID, c) == 0)
      return CpuidTable(std::vector<kvm_cpuid_entry2>(c->entries, c->entries + c->nent));
    if (errno != E2BIG) return errno_error("KVM_GET_SUPPORTED_CPUID");
  }
  return make_error(E2BIG, "KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
}

Result<std::vector<uint32_t>> System::msr_index_list() const {
  kvm_msr_list probe{};
  if (::ioctl(fd_.get(), KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
    return errno_error("KVM_GET_MSR_INDEX_LIST");
  std::vector<uint8_t> buf(sizeof(kvm_msr_list) + probe.nmsrs * sizeof(uint32_t));
  auto* l = reinterpret_cast<kvm_msr_list*>(buf.data());
  l->nmsrs = probe.nmsrs;
  if (::ioctl(fd_.get(), KVM_GET_MSR_INDEX_LIST, l) < 0) return errno_error("KVM_GET_MSR_INDEX_LIST");
  return std::vector<uint32_t>(l->indices, l->indices + l->nmsrs);
}

Result<VmFd> System::create_vm() const {
  int run_size = TRY(vcpu_mmap_size());
  int fd;
  // The kernel may refuse transiently while a previous VM is torn down.
  do fd = ::ioctl(fd_.get(), KVM_CREATE_VM, 0);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return errno_error("KVM_CREATE_VM");
  return VmFd(UniqueFd(fd), run_size);
}

namespace {
constexpr Capability kCaps[] = {
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY", true, "guest RAM from memfd mappings"},
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP", true, "in-kernel LAPIC, IOAPIC and PIC"},
    {KVM_CAP_PIT2, "KVM_CAP_PIT2", true, "in-kernel i8254 PIT"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID", true, "CPUID from KVM_GET_SUPPORTED_CPUID"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR", true, "VMX real-mode TSS"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT", true, "race-free vCPU kicks"},
    {KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE", true, "vCPU MP states"},
    {KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING", false, "GSI and MSI routes"},
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD", false, "interrupts from eventfds"},
    {KVM_CAP_IRQFD_RESAMPLE, "KVM_CAP_IRQFD_RESAMPLE", false, "level-triggered irqfds"},
    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD", false, "guest writes signal eventfds in the kernel"},
    {KVM_CAP_IOEVENTFD_ANY_LENGTH, "KVM_CAP_IOEVENTFD_ANY_LENGTH", false, "zero-length MMIO ioeventfds"},
    {KVM_CAP_SIGNAL_MSI, "KVM_CAP_SIGNAL_MSI", false, "MSIs from userspace"},
    {KVM_CAP_ADJUST_CLOCK, "KVM_CAP_ADJUST_CLOCK", false, "exact pause and resume of guest time"},
    {KVM_CAP_X86_USER_SPACE_MSR, "KVM_CAP_X86_USER_SPACE_MSR", false, "MSR exits (Xen hypercall page)"},
    {KVM_CAP_X86_MSR_FILTER, "KVM_CAP_X86_MSR_FILTER", false, "MSR filters (Xen hypercall page)"},
    {KVM_CAP_EXIT_ON_EMULATION_FAILURE, "KVM_CAP_EXIT_ON_EMULATION_FAILURE", false,
     "instruction bytes for emulation assists"},
    {KVM_CAP_XEN_HVM, "KVM_CAP_XEN_HVM", false, "in-kernel Xen fast paths"},
    {KVM_CAP_DIRTY_LOG_RING, "KVM_CAP_DIRTY_LOG_RING", false, "dirty-page tracking for migration"},
    {KVM_CAP_COALESCED_MMIO, "KVM_CAP_COALESCED_MMIO", false, "batched MMIO writes"},
};
}  // namespace

std::span<const Capability> known_capabilities() { return kCaps; }

Result<void> check_required_capabilities(const System& kvm) {
  for (const auto& c : kCaps)
    if (c.required && kvm.check_extension(c.id) <= 0)
      return make_error(ENOTSUP, "host KVM lacks {} ({}), which evmm requires", c.name, c.why);
  return {};
}

}  // namespace evmm
