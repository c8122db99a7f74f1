// Guest-virtual access for hypercall arguments: a guest passes pointers in its own address space,
// which the VMM translates page by page (KVM_TRANSLATE on the calling vCPU) and then reaches in
// guest memory. Any page that does not translate, is not RAM, or (for a write) is not writable ends
// the access with -EFAULT, as Xen's copy_from_guest does; nothing is allocated per byte.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>

#include "memory/guest_memory.h"

namespace evmm {

struct GuestPage {
  uint64_t gpa;  // of the byte asked for
  bool writable;
};
// gva -> where it lives; nullopt when it does not translate.
using GuestTranslate = std::function<std::optional<GuestPage>(uint64_t gva)>;

class GuestVa {
 public:
  // width_mask: 0xffffffff for a 32-bit guest, whose addresses wrap at 4 GiB.
  GuestVa(const GuestMemory& mem, GuestTranslate translate, uint64_t width_mask = ~uint64_t{0})
      : mem_(mem), translate_(std::move(translate)), mask_(width_mask) {}

  // 0, or -XEN_EFAULT.
  int read(uint64_t gva, std::span<uint8_t> out) const;
  int write(uint64_t gva, std::span<const uint8_t> in) const;
  template <typename T>
  int read_obj(uint64_t gva, T* out) const {
    // SAFETY: out is one object of sizeof(T) bytes (hypercall argument structs are trivially copyable).
    return read(gva, std::span<uint8_t>(reinterpret_cast<uint8_t*>(out), sizeof(T)));
  }
  template <typename T>
  int write_obj(uint64_t gva, const T& in) const {
    // SAFETY: in is one object of sizeof(T) bytes (hypercall argument structs are trivially copyable).
    return write(gva, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&in), sizeof(T)));
  }
  // Hands [gva, gva+len) to fn one page-bounded piece at a time, in order, each copied out of guest
  // memory into a page-sized buffer; stops at the first piece that does not translate (-EFAULT) and
  // after fn returns false (0).
  int for_each_piece(uint64_t gva, uint64_t len, const std::function<bool(std::span<const uint8_t>)>& fn) const;

 private:
  // The guest bytes for [gva, gva+n) within one page, n <= the rest of that page.
  std::optional<GuestSlice> piece(uint64_t gva, uint64_t n, bool write) const;
  // Hands [gva, gva+len) to fn a page-bounded piece at a time, with the offset of each piece; -EFAULT
  // at the first piece that does not translate, 0 when done or when fn returns false.
  int walk(uint64_t gva, uint64_t len, bool write, const std::function<bool(const GuestSlice&, uint64_t)>& fn) const;

  const GuestMemory& mem_;
  GuestTranslate translate_;
  uint64_t mask_;
};

}  // namespace evmm
