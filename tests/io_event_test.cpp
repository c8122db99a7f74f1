// Differential test of the I/O event registry: the same guest writes, once caught by KVM_IOEVENTFD
// and once all dispatched in userspace, must signal every eventfd the same number of times.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <variant>
#include <vector>

#include "boot/cpu_entry.h"
#include "event/io_event_registry.h"
#include "kvm/system.h"
#include "kvm/vcpu_fd.h"
#include "kvm/vm_fd.h"
#include "memory/guest_memory.h"
#include "tests/kvm_test_util.h"

namespace evmm::testing {
namespace {

struct GuestWrite {
  IoSpace space;
  uint64_t addr;
  uint8_t len;
  uint64_t value;  // already truncated to len
};

struct Reg {
  IoSpace space;
  uint64_t addr;
  uint8_t len;
  IoMatch match;
  size_t efd;  // index into the eventfd pool
};

constexpr uint64_t kCode = 0x100000, kPioBase = 0x1000, kMmioBase = 0xd0000000;

void put(std::vector<uint8_t>& out, std::initializer_list<uint8_t> bytes) { out.insert(out.end(), bytes); }
void put_imm(std::vector<uint8_t>& out, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) out.push_back(uint8_t(v >> (8 * i)));
}

// Straight-line 64-bit code, one short sequence per write, then hlt.
std::vector<uint8_t> assemble(const std::vector<GuestWrite>& writes) {
  std::vector<uint8_t> c;
  for (const auto& w : writes) {
    if (w.space == IoSpace::Pio) {
      put(c, {0x66, 0xba}), put_imm(c, w.addr, 2);  // mov dx, port
      switch (w.len) {
        case 1: put(c, {0xb0}), put_imm(c, w.value, 1), put(c, {0xee}); break;              // mov al; out dx, al
        case 2: put(c, {0x66, 0xb8}), put_imm(c, w.value, 2), put(c, {0x66, 0xef}); break;  // mov ax; out dx, ax
        default: put(c, {0xb8}), put_imm(c, w.value, 4), put(c, {0xef}); break;            // mov eax; out dx, eax
      }
    } else {
      put(c, {0x48, 0xbb}), put_imm(c, w.addr, 8);   // movabs rbx, addr
      put(c, {0x48, 0xb8}), put_imm(c, w.value, 8);  // movabs rax, value
      switch (w.len) {
        case 1: put(c, {0x88, 0x03}); break;        // mov [rbx], al
        case 2: put(c, {0x66, 0x89, 0x03}); break;  // mov [rbx], ax
        case 4: put(c, {0x89, 0x03}); break;        // mov [rbx], eax
        default: put(c, {0x48, 0x89, 0x03}); break; // mov [rbx], rax
      }
    }
  }
  c.push_back(0xf4);  // hlt: no in-kernel irqchip, so it exits to us
  return c;
}

// ioeventfd_in_range (virt/kvm/eventfd.c), written out independently of the registry.
bool kernel_matches(const Reg& r, const GuestWrite& w) {
  if (r.space != w.space || r.addr != w.addr) return false;
  if (r.len == 0) return true;
  if (r.len != w.len) return false;
  return r.match.wildcard || r.match.datamatch == w.value;
}

struct RunResult {
  std::vector<uint64_t> counts;  // per eventfd
  uint64_t exits = 0;            // writes that reached userspace
  IoEventStats stats;
};

// Boots a one-vCPU VM in 64-bit mode running `code`; every write exit goes through the registry.
void run_guest(const std::vector<uint8_t>& code, const std::vector<Reg>& regs,
               const std::vector<std::shared_ptr<const EventFd>>& efds, bool kernel, RunResult* out) {
  auto sys = System::open();
  ASSERT_TRUE(sys) << sys.error().message();
  auto vm = sys->create_vm();
  ASSERT_TRUE(vm) << vm.error().message();
  auto mem = GuestMemory::create({RegionSpec{GuestAddress(0), 4 << 20}});
  ASSERT_TRUE(mem) << mem.error().message();
  ASSERT_TRUE(vm->set_user_memory_region(mem->kvm_region(0)));
  ASSERT_TRUE(write_boot_tables(*mem, BootEntry{ImageFormat::ElfPlain, EntryMode::Long64, kCode}));
  ASSERT_TRUE(mem->write(GuestAddress(kCode), code));
  auto vcpu = vm->create_vcpu(0);
  ASSERT_TRUE(vcpu) << vcpu.error().message();
  auto cpuid = sys->supported_cpuid();
  ASSERT_TRUE(cpuid && vcpu->set_cpuid2(*cpuid));  // EFER.LME needs CPUID's long-mode bit
  ASSERT_TRUE(set_entry_state(*vcpu, BootEntry{ImageFormat::ElfPlain, EntryMode::Long64, kCode}));

  IoEventRegistry registry(kernel ? &*vm : nullptr);
  std::vector<IoEventRegistration> live;
  for (const auto& r : regs) {
    auto h = registry.add(r.space, r.addr, r.len, r.match, efds[r.efd]);
    ASSERT_TRUE(h) << h.error().message();
    live.push_back(std::move(*h));
  }
  out->stats = registry.stats();
  for (;;) {
    auto exit = vcpu->run();
    ASSERT_TRUE(exit) << exit.error().message();
    if (auto* io = std::get_if<exit::IoOut>(&*exit)) {
      ++out->exits;
      for (size_t off = 0; off + io->size <= io->data.size(); off += io->size)
        registry.dispatch_write(IoSpace::Pio, io->port, io->data.subspan(off, io->size));
    } else if (auto* m = std::get_if<exit::MmioWrite>(&*exit)) {
      ++out->exits;
      registry.dispatch_write(IoSpace::Mmio, m->addr, m->data);
    } else if (std::holds_alternative<exit::Hlt>(*exit)) {
      break;
    } else {
      FAIL() << "unexpected exit, variant index " << exit->index();
    }
  }
  live.clear();
  for (const auto& e : efds) out->counts.push_back(*e->consume());
}

TEST(IoEventConcurrent, KernelAndUserspaceDispatchAgree) {
  REQUIRE_KVM();
  std::mt19937_64 rng(20090622);
  auto pick = [&](auto... v) {
    const uint64_t a[] = {uint64_t(v)...};
    return a[rng() % sizeof...(v)];
  };
  auto trunc = [](uint64_t v, unsigned len) { return len == 8 ? v : v & ((1ull << (8 * len)) - 1); };

  // Groups 8 (PIO) or 16 (MMIO) bytes apart; each a random length and one to three items.
  std::vector<Reg> regs;
  std::vector<std::vector<uint64_t>> values;  // per group: its datamatch values, for the writes
  std::vector<std::pair<IoSpace, uint64_t>> groups;
  for (int g = 0; g < 120; ++g) {
    IoSpace space = g % 5 < 2 ? IoSpace::Pio : IoSpace::Mmio;
    uint64_t addr = space == IoSpace::Pio ? kPioBase + 8 * g : kMmioBase + 16 * g;
    uint8_t len = space == IoSpace::Pio ? pick(1, 2, 4, 8) : pick(0, 1, 2, 4, 8);
    groups.emplace_back(space, addr);
    values.emplace_back();
    int items = 1 + (rng() % 4 == 0 ? 1 + rng() % 2 : 0);
    for (int i = 0; i < items; ++i) {
      bool wildcard = len == 0 || rng() % 4 == 0;
      uint64_t v = wildcard ? 0 : trunc(rng() % 3 == 0 ? rng() : rng() % 4, len);
      if (!wildcard) values.back().push_back(v);
      regs.push_back({space, addr, len, wildcard ? IoMatch::any() : IoMatch::value(v), regs.size()});
    }
  }
  std::vector<std::shared_ptr<const EventFd>> efds;
  for (size_t i = 0; i < regs.size(); ++i) efds.push_back(std::make_shared<const EventFd>(std::move(*EventFd::create())));

  std::vector<GuestWrite> writes;
  for (int i = 0; i < 10000; ++i) {
    size_t g = rng() % groups.size();
    auto [space, addr] = groups[g];
    if (rng() % 8 == 0) addr += 1 + rng() % 3;  // near a group, not at it
    uint8_t len = space == IoSpace::Pio ? pick(1, 2, 4) : pick(1, 2, 4, 8);
    uint64_t v = !values[g].empty() && rng() % 2 ? values[g][rng() % values[g].size()] : rng() % 4;
    if (rng() % 8 == 0) v = rng();
    writes.push_back({space, addr, len, trunc(v, len)});
  }
  std::vector<uint64_t> expected(regs.size());
  for (const auto& w : writes)
    for (size_t r = 0; r < regs.size(); ++r) expected[r] += kernel_matches(regs[r], w);

  auto code = assemble(writes);
  RunResult in_kernel, in_user;
  run_guest(code, regs, efds, true, &in_kernel);
  if (HasFatalFailure()) return;
  run_guest(code, regs, efds, false, &in_user);
  if (HasFatalFailure()) return;

  // Both paths were exercised: KVM held some groups and consumed their writes, not all.
  EXPECT_GT(in_kernel.stats.in_kernel, 0u);
  EXPECT_LT(in_kernel.stats.in_kernel, regs.size());
  EXPECT_EQ(in_user.stats.in_kernel, 0u);
  EXPECT_EQ(in_user.exits, writes.size());
  EXPECT_LT(in_kernel.exits, in_user.exits);
  uint64_t hits = 0;
  for (auto c : expected) hits += c;
  EXPECT_GT(hits, writes.size() / 4);
  EXPECT_EQ(in_kernel.counts, in_user.counts);
  EXPECT_EQ(in_user.counts, expected);
  RecordProperty("kernel_exits", std::to_string(in_kernel.exits));
  std::printf("registrations %zu (kernel held %zu), writes %zu, signals %lu, exits kernel-run %lu user-run %lu\n",
              regs.size(), in_kernel.stats.in_kernel, writes.size(), static_cast<unsigned long>(hits),
              static_cast<unsigned long>(in_kernel.exits), static_cast<unsigned long>(in_user.exits));
}

// Reads at a registered address are never answered by the registry: they reach the VMM as reads.
TEST(IoEventConcurrent, ReadsAtARegisteredAddressReachUserspace) {
  REQUIRE_KVM();
  auto sys = System::open();
  ASSERT_TRUE(sys);
  auto vm = sys->create_vm();
  ASSERT_TRUE(vm);
  auto mem = GuestMemory::create({RegionSpec{GuestAddress(0), 4 << 20}});
  ASSERT_TRUE(mem);
  ASSERT_TRUE(vm->set_user_memory_region(mem->kvm_region(0)));
  ASSERT_TRUE(write_boot_tables(*mem, BootEntry{ImageFormat::ElfPlain, EntryMode::Long64, kCode}));
  // in al, dx (port 0x1000); mov eax, [rbx] (MMIO); out dx, al; hlt
  std::vector<uint8_t> code{0x66, 0xba, 0x00, 0x10, 0xec, 0x48, 0xbb};
  put_imm(code, kMmioBase, 8);
  put(code, {0x8b, 0x03, 0xee, 0xf4});
  ASSERT_TRUE(mem->write(GuestAddress(kCode), code));
  auto vcpu = vm->create_vcpu(0);
  ASSERT_TRUE(vcpu);
  auto cpuid = sys->supported_cpuid();
  ASSERT_TRUE(cpuid && vcpu->set_cpuid2(*cpuid));
  ASSERT_TRUE(set_entry_state(*vcpu, BootEntry{ImageFormat::ElfPlain, EntryMode::Long64, kCode}));
  IoEventRegistry registry(&*vm);
  auto pio = std::make_shared<const EventFd>(std::move(*EventFd::create()));
  auto mmio = std::make_shared<const EventFd>(std::move(*EventFd::create()));
  auto r1 = registry.add(IoSpace::Pio, 0x1000, 1, IoMatch::any(), pio);
  auto r2 = registry.add(IoSpace::Mmio, kMmioBase, 4, IoMatch::any(), mmio);
  ASSERT_TRUE(r1 && r2);
  ASSERT_EQ(registry.stats().in_kernel, 2u);

  auto e1 = vcpu->run();
  ASSERT_TRUE(e1 && std::holds_alternative<exit::IoIn>(*e1));
  std::get<exit::IoIn>(*e1).data[0] = 0x5a;
  auto e2 = vcpu->run();
  ASSERT_TRUE(e2 && std::holds_alternative<exit::MmioRead>(*e2));
  EXPECT_EQ(std::get<exit::MmioRead>(*e2).addr, kMmioBase);
  auto e3 = vcpu->run();  // the out: KVM's ioeventfd consumes it, so the next exit is the hlt
  ASSERT_TRUE(e3);
  EXPECT_TRUE(std::holds_alternative<exit::Hlt>(*e3));
  EXPECT_EQ(*pio->consume(), 1u);
  EXPECT_EQ(*mmio->consume(), 0u);
}

}  // namespace
}  // namespace evmm::testing
