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

}  // namespace evmm
