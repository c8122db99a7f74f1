// An exception an assisted instruction raises, and the error type that carries it out of the
// assists. A fault is not evmm's failure: the vCPU injects it into the guest and resumes, with the
// registers as the CPU leaves them at a fault (RIP at the instruction, nothing of it committed).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "base/result.h"

namespace evmm::x86 {

// Exception vectors, SDM vol. 3 table 6-1.
enum class Vector : uint8_t {
  DE = 0, DB = 1, BP = 3, UD = 6, NM = 7, DF = 8, TS = 10, NP = 11, SS = 12, GP = 13, PF = 14, MF = 16, AC = 17,
  XM = 19, Count = 32
};
const char* to_string(Vector v);

struct Fault {
  Vector vector;
  std::optional<uint32_t> error_code;  // pushed by #DF, #TS, #NP, #SS, #GP, #PF, #AC (SDM vol. 3 6.13)
  std::optional<uint64_t> cr2;         // the faulting linear address, for #PF only
};

// The error code of a fault that names a segment selector (SDM vol. 3 6.13): the selector's
// index and TI bits; EXT set when an external event caused the fault, IDT when it names an IDT gate.
constexpr uint32_t selector_error(uint16_t selector, bool ext = false) { return (selector & 0xfffcu) | (ext ? 1u : 0u); }
constexpr uint32_t idt_error(uint8_t vector, bool ext = false) { return (uint32_t{vector} << 3) | 2u | (ext ? 1u : 0u); }

// The failure of an assist: an Error evmm stops the VM on, or one that also carries the fault the
// CPU would raise. Converts from Error, so the assists' TRY chains pass both kinds along.
class AssistError {
 public:
  AssistError(Error e) : error_(std::move(e)) {}  // NOLINT: implicit on purpose, for TRY
  AssistError(Error e, Fault f) : error_(std::move(e)), fault_(f) {}

  int code() const { return error_.code(); }
  const std::string& context() const { return error_.context(); }
  std::string message() const { return error_.message(); }
  const std::optional<Fault>& fault() const { return fault_; }
  AssistError wrap(std::string_view outer) const& { return AssistError(error_.wrap(outer), fault_); }

 private:
  AssistError(Error e, std::optional<Fault> f) : error_(std::move(e)), fault_(f) {}
  Error error_;
  std::optional<Fault> fault_;
};

template <typename T = void>
using AssistResult = tl::expected<T, AssistError>;

// A fault the CPU would raise, with the message evmm logs: "... (the CPU would raise #GP(0x10))".
// The errno is EINVAL, or EFAULT for a #PF: an unmapped page is still a guest memory access that failed.
template <typename... Args>
tl::unexpected<AssistError> raise(Fault f, fmt::format_string<Args...> fmtstr, Args&&... args) {
  std::string what = fmt::format(fmtstr, std::forward<Args>(args)...);
  std::string how = f.error_code ? fmt::format("#{}({:#x})", to_string(f.vector), *f.error_code)
                                 : fmt::format("#{}", to_string(f.vector));
  int code = f.vector == Vector::PF ? EFAULT : EINVAL;
  return tl::unexpected(AssistError(Error(code, fmt::format("{} (the CPU would raise {})", what, how)), f));
}

}  // namespace evmm::x86
