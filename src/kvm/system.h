// /dev/kvm: one method per ioctl, no policy (after rust-vmm's kvm-ioctls).
#pragma once

#include "kvm/kvm_uapi.h"

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"

namespace evmm {

class VmFd;

// A kvm_cpuid2 with room for its entries, owned.
class CpuidTable {
 public:
  explicit CpuidTable(std::vector<kvm_cpuid_entry2> entries) : entries_(std::move(entries)) {}
  std::vector<kvm_cpuid_entry2>& entries() { return entries_; }
  const std::vector<kvm_cpuid_entry2>& entries() const { return entries_; }
  // The entry for (function, index); index is ignored for leaves that do not use it.
  kvm_cpuid_entry2* find(uint32_t function, uint32_t index = 0);

 private:
  std::vector<kvm_cpuid_entry2> entries_;
};

class System {
 public:
  static Result<System> open(const char* path = "/dev/kvm");

  int api_version() const;
  // KVM_CHECK_EXTENSION: 0 when absent, otherwise the capability's value (often 1).
  int check_extension(int cap) const;
  Result<int> vcpu_mmap_size() const;
  Result<CpuidTable> supported_cpuid() const;
  Result<std::vector<uint32_t>> msr_index_list() const;
  Result<VmFd> create_vm() const;

  int fd() const { return fd_.get(); }

 private:
  explicit System(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace evmm
