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
  BytePrefix = 0x0a,
  WordPrefix = 0x0b,
  DWordPrefix = 0x0c,
  QWordPrefix = 0x0e,
  Package = 0x12,
  Ones = 0xff,
};

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

}  // namespace evmm::boot::aml
