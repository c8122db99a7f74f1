// The dirty log a migration or snapshot reads (memory/dirty_log.h): a real guest writes pages through
// KVM (its slot logs them) while a device writes others through the AddressSpace over the same memfd
// and a backend marks others in its vhost log; each round has exactly the pages written since the
// last one, by any of them, and nothing else. (Real backends marking that log: vhost_user_log_test.)
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <optional>
#include <set>
#include <vector>

#include "base/fd.h"
#include "boot/cpu_entry.h"
#include "kvm/system.h"
#include "kvm/vcpu_fd.h"
#include "kvm/vm_fd.h"
#include "kvm/dirty_ring.h"
#include "memory/dirty_log.h"
#include "tests/kvm_test_util.h"

namespace evmm::testing {
namespace {

constexpr uint64_t kSize = 2 << 20, kPage = 4096;
constexpr uint64_t kCode = 0x1000;  // one page of code per round, at kCode + round * kPage

// 32-bit flat code (paging off) that writes one byte to each page, then hlt.
std::vector<uint8_t> writes_to(const std::vector<uint64_t>& pages) {
  std::vector<uint8_t> c;
  for (uint64_t p : pages) {
    uint32_t a = uint32_t(p * kPage + 8);
    c.insert(c.end(), {0xc6, 0x05, uint8_t(a), uint8_t(a >> 8), uint8_t(a >> 16), uint8_t(a >> 24), 0x5a});  // mov byte [a], 0x5a
  }
  c.push_back(0xf4);
  return c;
}

std::set<uint64_t> page_numbers(const std::vector<DirtyRegion>& round) {
  std::set<uint64_t> out;
  for (GuestAddress a : dirty_pages(round)) out.insert(a.raw() / kPage);
  return out;
}

// KVM's side of the log: the slot's bitmap, or the vCPU's dirty ring.
enum class KvmLog { Bitmap, Ring };
constexpr uint32_t kRingEntries = 4096;

void each_page_in_exactly_one_round(KvmLog kind) {
  auto sys = System::open();
  ASSERT_TRUE(sys) << sys.error().message();
  auto vm = sys->create_vm();
  ASSERT_TRUE(vm) << vm.error().message();
  if (kind == KvmLog::Ring) {
    if (auto r = DirtyRing::enable(*vm, kRingEntries); !r) {
      if (r.error().code() == EOPNOTSUPP) GTEST_SKIP() << r.error().message();
      FAIL() << r.error().message();
    }
  }
  UniqueFd memfd(::memfd_create("dirty-log-test", MFD_CLOEXEC));
  ASSERT_TRUE(memfd.valid());
  ASSERT_EQ(::ftruncate(memfd.get(), kSize), 0);
  // KVM's view and the space's view of the same pages.
  void* host = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, memfd.get(), 0);
  ASSERT_NE(host, MAP_FAILED);
  auto* bytes = static_cast<uint8_t*>(host);
  auto space = AddressSpace::create();
  ASSERT_TRUE(space) << space.error().message();
  ASSERT_TRUE((*space)->add_region(GuestAddress(0), kSize, memfd.get(), 0));

  // The rounds: pages the guest writes, pages the device writes (one page written by both).
  const std::vector<std::pair<std::vector<uint64_t>, std::vector<uint64_t>>> rounds = {
      {{0x10, 0x11, 0x80}, {0x11, 0x150, 0x1ff}},
      {{0x20}, {}},
      {{}, {0x30}},
      {{}, {}},
  };
  // Pages a vhost-user backend marks in its log (memory/page_log.h, the Backend's own marking side):
  // one written by all three, one also by the device, one beyond the space's region.
  const std::vector<std::vector<uint64_t>> backend = {{0x11, 0x60}, {}, {0x30, 0x61}, {0x300}};
  auto log = PageLog::create(2 * kSize);
  ASSERT_TRUE(log) << log.error().message();
  auto marker = PageLog::map(log->fd(), log->size(), 0);
  ASSERT_TRUE(marker) << marker.error().message();
  PageLog* logs[] = {&*log};
  for (size_t r = 0; r < rounds.size(); ++r) {
    auto code = writes_to(rounds[r].first);
    std::memcpy(bytes + kCode + r * kPage, code.data(), code.size());  // the host's own writes: logged by nobody
  }
  kvm_userspace_memory_region region{};
  region.slot = 0;
  region.flags = KVM_MEM_LOG_DIRTY_PAGES;
  region.memory_size = kSize;
  region.userspace_addr = reinterpret_cast<uint64_t>(host);
  ASSERT_TRUE(vm->set_user_memory_region(region));
  const DirtySlot slot{0, GuestAddress(0), kSize};
  auto vcpu = vm->create_vcpu(0);
  ASSERT_TRUE(vcpu) << vcpu.error().message();
  std::optional<DirtyRing> ring;
  std::vector<DirtyRing*> rings;
  if (kind == KvmLog::Ring) {
    auto r = DirtyRing::map(*vcpu, kRingEntries);
    ASSERT_TRUE(r) << r.error().message();
    ring.emplace(std::move(*r));
    rings.push_back(&*ring);
    // With the rings on, they are the VM's only log: KVM_GET_DIRTY_LOG is refused.
    std::vector<uint64_t> bitmap(kSize / kPage / 64);
    EXPECT_FALSE(vm->get_dirty_log(0, bitmap));
  }
  ASSERT_TRUE(set_entry_state(*vcpu, BootEntry{ImageFormat::ElfPlain, EntryMode::Protected32, kCode}));

  std::set<uint64_t> seen;
  for (size_t r = 0; r < rounds.size(); ++r) {
    SCOPED_TRACE(r);
    auto regs = vcpu->get_regs();
    ASSERT_TRUE(regs);
    regs->rip = kCode + r * kPage;
    ASSERT_TRUE(vcpu->set_regs(*regs));
    auto exit = vcpu->run();
    ASSERT_TRUE(exit) << exit.error().message();
    ASSERT_TRUE(std::holds_alternative<exit::Hlt>(*exit)) << "exit variant " << exit->index();
    for (uint64_t p : rounds[r].second) ASSERT_TRUE((*space)->write_obj<uint8_t>(GuestAddress(p * kPage + 16), 0xa5));
    for (uint64_t p : backend[r]) ASSERT_TRUE(marker->mark(GuestAddress(p * kPage + 32), 1));
    auto got = collect_dirty_round(*vm, std::span(&slot, 1), **space, logs, rings);
    ASSERT_TRUE(got) << got.error().message();
    std::set<uint64_t> want(rounds[r].first.begin(), rounds[r].first.end());
    want.insert(rounds[r].second.begin(), rounds[r].second.end());
    want.insert(backend[r].begin(), backend[r].end());
    EXPECT_EQ(page_numbers(*got), want);
    for (uint64_t p : want) EXPECT_TRUE(seen.insert(p).second) << "page " << p << " in two rounds";
  }
  // The guest's bytes landed where the log said.
  EXPECT_EQ(bytes[0x10 * kPage + 8], 0x5a);
  EXPECT_EQ(bytes[0x150 * kPage + 16], 0xa5);

  const DirtySlot crooked{0, GuestAddress(100), kSize};
  auto bad = collect_dirty_round(*vm, std::span(&crooked, 1), **space, {}, rings);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), EINVAL);
  if (ring) {
    EXPECT_EQ(ring->bad(), 0u);
  }
  ::munmap(host, kSize);
}

TEST(DirtyLog, EachPageWrittenByTheGuestOrADeviceIsInExactlyOneRound) {
  REQUIRE_KVM();
  each_page_in_exactly_one_round(KvmLog::Bitmap);
}

TEST(DirtyLog, TheSameFromKvmsDirtyRing) {
  REQUIRE_KVM();
  each_page_in_exactly_one_round(KvmLog::Ring);
}

TEST(DirtyLog, ADirtyRingIsSizedAndTurnedOnBeforeTheVcpus) {
  REQUIRE_KVM();
  auto sys = System::open();
  ASSERT_TRUE(sys);
  auto vm = sys->create_vm();
  ASSERT_TRUE(vm);
  if (vm->check_extension(KVM_CAP_DIRTY_LOG_RING) <= 0 && vm->check_extension(KVM_CAP_DIRTY_LOG_RING_ACQ_REL) <= 0)
    GTEST_SKIP() << "no KVM dirty ring here";
  EXPECT_EQ(DirtyRing::enable(*vm, 1000).error().code(), EINVAL);  // not a power of two
  EXPECT_EQ(DirtyRing::enable(*vm, 256).error().code(), EINVAL);   // below KVM's reserved margin
  EXPECT_EQ(DirtyRing::enable(*vm, 1u << 31).error().code(), EINVAL);
  auto vcpu = vm->create_vcpu(0);
  ASSERT_TRUE(vcpu);
  EXPECT_FALSE(DirtyRing::enable(*vm, kRingEntries));  // KVM refuses it once a vCPU exists
}

}  // namespace
}  // namespace evmm::testing
