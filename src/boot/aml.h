// A small AML builder (ACPI 6.4 chapter 20) for the DSDT: enough for named objects and packages,
// with the PkgLength encoding that Scope, Device and Method will reuse.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace evmm::boot::aml {

using Bytes = std::vector<uint8_t>;

enum class Op : uint8_t {
  Zero = 0x00,
  One = 0x01,
  Name = 0x08,
  StringPrefix = 0x0d,
  Scope = 0x10,
  Buffer = 0x11,
  BytePrefix = 0x0a,
  WordPrefix = 0x0b,
  DWordPrefix = 0x0c,
  QWordPrefix = 0x0e,
  Package = 0x12,
  ExtOpPrefix = 0x5b,
  RootChar = 0x5c,
  Ones = 0xff,
};
constexpr uint8_t kExtDevice = 0x82;  // ExtOpPrefix 0x82: DeviceOp

// An integer constant in its shortest encoding (§20.2.3 ComputationalData).
Bytes integer(uint64_t v);
// A NameSeg (§20.2.2): one to four characters, lead [A-Z_], then [A-Z0-9_], padded with '_'.
// Names are chosen by evmm's code, never by a guest, so a bad one is a programming error (abort).
Bytes name_seg(std::string_view name);
// PkgLength (§20.2.4) for a body of body_len bytes; the encoded value counts its own bytes too.
Bytes pkg_length(uint64_t body_len);
// DefName := NameOp NameString DataRefObject.
Bytes name(std::string_view seg, const Bytes& object);
// DefPackage := PackageOp PkgLength NumElements PackageElementList; at most 255 elements.
Bytes package(const std::vector<Bytes>& elements);
// String := StringPrefix AsciiCharList NullChar; ASCII 0x01-0x7f chosen by evmm (abort otherwise).
Bytes string(std::string_view s);
// DefBuffer := BufferOp PkgLength BufferSize ByteList.
Bytes buffer(const Bytes& bytes);
// DefScope := ScopeOp PkgLength NameString TermList, for a root-relative path such as "\\_SB_".
Bytes scope(std::string_view root_seg, const Bytes& terms);
// DefDevice := DeviceOp PkgLength NameString TermList.
Bytes device(std::string_view seg, const Bytes& terms);

// Resource descriptors (§6.4) for a _CRS buffer.
namespace resource {
// Memory32Fixed (§6.4.3.4), read-write.
Bytes memory32_fixed(uint32_t base, uint32_t len);
// Extended Interrupt (§6.4.3.6) for one GSI, consumer, exclusive.
Bytes interrupt(uint32_t gsi, bool edge, bool active_high);
// The End Tag (§6.4.2.9) with checksum 0 ("treated as if the checksum operation succeeded").
Bytes end_tag();
}  // namespace resource

}  // namespace evmm::boot::aml
