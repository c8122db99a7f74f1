// find_facs against tables evmm wrote, and against tables a guest scribbled over.
#include "boot/acpi_lookup.h"

#include <gtest/gtest.h>

#include "boot/acpi_tables.h"
#include "boot/boot.h"
#include "boot/platform_tables.h"

namespace evmm::boot {
namespace {

TEST(AcpiLookup, FindsTheFacsThroughRsdpRsdtAndFadt) {
  auto mem = GuestMemory::create_pc(64 << 20);
  ASSERT_TRUE(mem);
  ASSERT_TRUE(write_acpi_tables(*mem, 2));
  auto facs = find_facs(*mem);
  ASSERT_TRUE(facs) << facs.error().message();
  auto f = mem->read_obj<AcpiFacs>(GuestAddress(*facs));
  ASSERT_TRUE(f);
  EXPECT_EQ(std::string(f->signature, 4), "FACS");
  EXPECT_EQ(f->firmware_waking_vector, 0u);
}

TEST(AcpiLookup, ACorruptedTableIsAnErrorNotACrash) {
  auto mem = GuestMemory::create_pc(64 << 20);
  ASSERT_TRUE(mem);
  ASSERT_TRUE(write_acpi_tables(*mem, 1));
  auto facs = find_facs(*mem);
  ASSERT_TRUE(facs);
  // The guest scribbles over the FACS signature, then over the RSDP's RSDT pointer.
  ASSERT_TRUE(mem->write_obj(GuestAddress(*facs), uint32_t{0}));
  EXPECT_EQ(find_facs(*mem).error().code(), ENOENT);
  ASSERT_TRUE(mem->write_obj(GuestAddress(kRsdpAddress + 16), uint32_t{0xfffffff0}));
  EXPECT_EQ(find_facs(*mem).error().code(), EFAULT);
}

}  // namespace
}  // namespace evmm::boot
