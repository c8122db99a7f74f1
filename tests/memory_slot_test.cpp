#include "kvm/memory_slot.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include "kvm/system.h"
#include "kvm/vm_fd.h"
#include "tests/kvm_test_util.h"

namespace evmm {
namespace {

constexpr uint64_t kSize = 64 << 10;

struct Mapping {
  Mapping() : host(::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) {}
  ~Mapping() { ::munmap(host, kSize); }
  void* host;
};

kvm_userspace_memory_region region(uint32_t slot, const Mapping& m) {
  kvm_userspace_memory_region r{};
  r.slot = slot;
  r.guest_phys_addr = 0;
  r.memory_size = kSize;
  r.userspace_addr = reinterpret_cast<uint64_t>(m.host);
  return r;
}

// KVM refuses a second slot over the same guest range, so a new slot there shows the old one is gone.
TEST(MemorySlot, DestroyingTheHandleRemovesTheSlot) {
  REQUIRE_KVM();
  auto kvm = System::open();
  ASSERT_TRUE(kvm) << kvm.error().message();
  auto vm = kvm->create_vm();
  ASSERT_TRUE(vm) << vm.error().message();
  Mapping m;
  ASSERT_NE(m.host, MAP_FAILED);
  {
    auto first = MemorySlot::add(*vm, region(0, m));
    ASSERT_TRUE(first) << first.error().message();
    auto overlap = MemorySlot::add(*vm, region(1, m));
    ASSERT_FALSE(overlap);
    EXPECT_EQ(overlap.error().code(), EEXIST);
    MemorySlot moved = std::move(*first);  // the moved-from handle must not remove it
    auto still = MemorySlot::add(*vm, region(1, m));
    ASSERT_FALSE(still);
    EXPECT_EQ(still.error().code(), EEXIST);
  }
  auto second = MemorySlot::add(*vm, region(1, m));
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_EQ(second->slot(), 1u);
  second->reset();
  EXPECT_TRUE(MemorySlot::add(*vm, region(2, m)));
}

}  // namespace
}  // namespace evmm
