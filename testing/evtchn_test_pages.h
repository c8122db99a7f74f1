// A shared_info page in a plain buffer, for the event channel tests: vCPUs use their legacy
// vcpu_info slots inside it, as a guest does before VCPUOP_register_vcpu_info.
#pragma once

#include <cstring>
#include <vector>

#include "xen/evtchn_2l.h"

namespace evmm::testing {

class BufferPages : public EvtchnPages {
 public:
  explicit BufferPages(XenWidth w) : layout_(evtchn_2l_layout(w)), page_(4096 / 8, 0) {}

  GuestSlice shared_info() const override {
    if (!placed) return {};
    return GuestSlice::over_buffer({raw(), 4096});
  }
  GuestSlice vcpu_info(uint32_t vcpu) const override {
    if (!placed || vcpu >= layout_.legacy_vcpus) return {};
    auto s = shared_info().subslice(vcpu * layout_.vcpu_info_size + vcpu_info_shift, layout_.vcpu_info_size);
    return s ? *s : GuestSlice{};
  }

  // The page as the headers describe it: the test's own buffer, not guest RAM.
  // SAFETY (these four): page_ is 4096 bytes at an 8-byte boundary, as every view of it needs.
  uint8_t* raw() const { return reinterpret_cast<uint8_t*>(page_.data()); }
  ::shared_info* si64() { return reinterpret_cast<::shared_info*>(page_.data()); }
  shared_info_x86_32* si32() { return reinterpret_cast<shared_info_x86_32*>(page_.data()); }
  uint8_t byte(size_t offset) const { return reinterpret_cast<const uint8_t*>(page_.data())[offset]; }
  void clear() { std::memset(page_.data(), 0, 4096); }

  bool placed = true;
  size_t vcpu_info_shift = 0;  // moves every vcpu_info by this many bytes (to misalign it)

 private:
  const Evtchn2lLayout& layout_;
  mutable std::vector<uint64_t> page_;  // uint64_t: 8-byte aligned, as a guest page is
};

}  // namespace evmm::testing
