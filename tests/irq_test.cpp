// irqfd, resample and MSI on a real VM. The level test runs a tiny real-mode guest whose interrupt
// handlers EOI the in-kernel PIC and report through a port write; the MSI tests read the LAPIC's IRR
// through KVM_GET_LAPIC without running the guest.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <variant>

#include "event/event_loop.h"
#include "event/eventfd_interrupt_line.h"
#include "event/irq_fd.h"
#include "event/irq_routing.h"
#include "kvm/system.h"
#include "kvm/vcpu_fd.h"
#include "kvm/vm_fd.h"
#include "memory/layout.h"
#include "tests/kvm_test_util.h"

namespace evmm::testing {
namespace {

constexpr uint64_t kMemSize = 0x10000;
constexpr uint16_t kReadyPort = 0x82, kIrq4Port = 0x80, kIrq3Port = 0x81;

// Real mode, at 0x1000: remap the master PIC to vectors 0x20-0x27, unmask IRQ3 and IRQ4, report
// ready, then sti; hlt forever. Each handler EOIs the PIC first (so the resamplefd has fired by the
// time the test sees the exit), then writes its port.
constexpr uint8_t kMain[] = {
    0xfa,                    // cli
    0xb0, 0x11, 0xe6, 0x20,  // ICW1: edge, cascade, ICW4
    0xb0, 0x20, 0xe6, 0x21,  // ICW2: vector base 0x20
    0xb0, 0x04, 0xe6, 0x21,  // ICW3: slave on IR2
    0xb0, 0x01, 0xe6, 0x21,  // ICW4: 8086 mode
    0xb0, 0xe7, 0xe6, 0x21,  // OCW1: unmask IR3, IR4
    0xe6, kReadyPort,        // out ready
    0xfb, 0xf4, 0xeb, 0xfc,  // 1: sti; hlt; jmp 1b
};
constexpr uint8_t kIrq4Handler[] = {0xb0, 0x20, 0xe6, 0x20, 0xe6, kIrq4Port, 0xcf};  // EOI; out; iret
constexpr uint8_t kIrq3Handler[] = {0xb0, 0x20, 0xe6, 0x20, 0xe6, kIrq3Port, 0xcf};

void on_alarm(int) {}

// A VM with one vCPU and 64 KiB of RAM at 0.
struct TinyVm {
  void SetUp() {
    auto kvm = System::open();
    ASSERT_TRUE(kvm) << kvm.error().message();
    auto v = kvm->create_vm();
    ASSERT_TRUE(v) << v.error().message();
    vm.emplace(std::move(*v));
    mem = static_cast<uint8_t*>(::mmap(nullptr, kMemSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(mem, MAP_FAILED);
    kvm_userspace_memory_region region{};
    region.memory_size = kMemSize;
    region.userspace_addr = reinterpret_cast<uint64_t>(mem);
    ASSERT_TRUE(vm->set_user_memory_region(region));
    ASSERT_TRUE(vm->set_tss_addr(layout::kKvmTss));
    ASSERT_TRUE(vm->set_identity_map_addr(layout::kKvmIdentityMap));
    ASSERT_TRUE(vm->create_irqchip());
    auto c = vm->create_vcpu(0);
    ASSERT_TRUE(c) << c.error().message();
    vcpu.emplace(std::move(*c));
  }
  ~TinyVm() {
    if (mem && mem != MAP_FAILED) ::munmap(mem, kMemSize);
  }

  // The LAPIC accepts fixed interrupts only when software-enabled (SDM vol. 3 §11.4.7.2).
  void enable_lapic() {
    auto l = vcpu->get_lapic();
    ASSERT_TRUE(l);
    uint32_t svr = 0x1ff;
    std::memcpy(&l->regs[0xf0], &svr, 4);
    ASSERT_TRUE(vcpu->set_lapic(*l));
  }
  bool irr(uint8_t vector) {
    auto l = vcpu->get_lapic();
    if (!l) return false;
    uint32_t reg;
    std::memcpy(&reg, &l->regs[0x200 + (vector / 32) * 0x10], 4);
    return reg & (1u << (vector % 32));
  }
  // Irqfd injection may go through a kernel work item; wait for it without asserting a duration.
  bool wait_irr(uint8_t vector) {
    for (int i = 0; i < 100000; ++i) {
      if (irr(vector)) return true;
      ::usleep(100);
    }
    return false;
  }

  // Runs the vCPU to its next port write and returns the port (-1 on anything else).
  int run_to_port() {
    for (;;) {
      auto e = vcpu->run();
      if (!e) return -1;
      if (auto* out = std::get_if<exit::IoOut>(&*e)) return out->port;
      if (std::holds_alternative<exit::Hlt>(*e)) continue;
      return -1;
    }
  }

  std::optional<VmFd> vm;
  std::optional<VcpuFd> vcpu;
  uint8_t* mem = nullptr;
};

class IrqTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_KVM();
    vm_.SetUp();
    // A hang guard, not a timing assertion: a lost interrupt ends KVM_RUN with EINTR and a failure.
    struct sigaction sa{};
    sa.sa_handler = on_alarm;
    ::sigaction(SIGALRM, &sa, &old_);
    ::alarm(60);
  }
  void TearDown() override {
    ::alarm(0);
    ::sigaction(SIGALRM, &old_, nullptr);
  }
  TinyVm vm_;
  struct sigaction old_{};
};
// The suite name ends in Concurrent: ctest labels its tests "concurrency" (tests/CMakeLists.txt).
using IrqTestConcurrent = IrqTest;

void load_guest(TinyVm& t) {
  std::memcpy(t.mem + 0x1000, kMain, sizeof kMain);
  std::memcpy(t.mem + 0x1100, kIrq4Handler, sizeof kIrq4Handler);
  std::memcpy(t.mem + 0x1200, kIrq3Handler, sizeof kIrq3Handler);
  // Real-mode IVT: vector 0x24 (IRQ4) and 0x23 (IRQ3), offset then segment 0.
  uint16_t ivt4[2] = {0x1100, 0}, ivt3[2] = {0x1200, 0};
  std::memcpy(t.mem + 0x24 * 4, ivt4, 4);
  std::memcpy(t.mem + 0x23 * 4, ivt3, 4);
  auto s = t.vcpu->get_sregs();
  ASSERT_TRUE(s);
  s->cs.base = 0;
  s->cs.selector = 0;
  ASSERT_TRUE(t.vcpu->set_sregs(*s));
  kvm_regs r{};
  r.rip = 0x1000;
  r.rsp = 0x8000;
  r.rflags = 2;
  ASSERT_TRUE(t.vcpu->set_regs(r));
}

// A level line with resample: one assert yields an interrupt per EOI while it stays asserted, and
// none after deassert. The test thread runs the loop itself, so every resample is dispatched at a
// known point; GSI 3 (an edge irqfd) is the marker that proves IRQ4 stayed quiet.
TEST_F(IrqTestConcurrent, LevelLineReRaisesAfterEoiUntilDeasserted) {
  if (vm_.vm->check_extension(KVM_CAP_IRQFD_RESAMPLE) <= 0) GTEST_SKIP() << "no KVM_CAP_IRQFD_RESAMPLE";
  load_guest(vm_);
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop);
  auto line = EventFdInterruptLine::create(*vm_.vm, 4, EventFdInterruptLine::Mode::Level);
  ASSERT_TRUE(line) << line.error().message();
  ASSERT_TRUE((*loop)->add(*line));
  auto marker = EventFdInterruptLine::create(*vm_.vm, 3, EventFdInterruptLine::Mode::Edge);
  ASSERT_TRUE(marker) << marker.error().message();

  ASSERT_EQ(vm_.run_to_port(), kReadyPort);
  (*line)->set_level(true);
  ASSERT_EQ(vm_.run_to_port(), kIrq4Port);  // the irqfd write reached the guest
  for (int i = 0; i < 3; ++i) {
    // The handler's EOI fired the resamplefd; the still-asserted line raises IRQ4 again.
    ASSERT_EQ(*(*loop)->run_once(0), 1);
    ASSERT_EQ(vm_.run_to_port(), kIrq4Port);
  }
  (*line)->set_level(false);
  ASSERT_EQ(*(*loop)->run_once(0), 1);  // the last EOI's resample: not re-raised
  (*marker)->trigger();
  EXPECT_EQ(vm_.run_to_port(), kIrq3Port);  // IRQ4 would have come first
  EXPECT_EQ((*line)->failures(), 0u);
}

TEST_F(IrqTestConcurrent, SignalMsiReachesTheLapic) {
  vm_.enable_lapic();
  kvm_msi msi{};
  msi.address_lo = 0xfee00000;  // destination APIC ID 0, physical
  msi.data = 0x51;              // fixed, edge, vector 0x51
  ASSERT_FALSE(vm_.irr(0x51));
  auto r = vm_.vm->signal_msi(msi);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, 1);
  EXPECT_TRUE(vm_.irr(0x51));
}

TEST_F(IrqTestConcurrent, MsiRouteAndIrqfdReachTheLapicUntilRemoved) {
  vm_.enable_lapic();
  auto table = IrqRoutingTable::for_vm(*vm_.vm);
  ASSERT_TRUE(table) << table.error().message();
  auto route = (*table)->add_msi({0xfee00000, 0x52});
  ASSERT_TRUE(route) << route.error().message();
  EXPECT_EQ(route->gsi(), IrqRoutingTable::kFirstMsiGsi);
  auto efd = EventFd::create();
  ASSERT_TRUE(efd);
  {
    auto irqfd = IrqFd::assign(*vm_.vm, route->gsi(), *efd);
    ASSERT_TRUE(irqfd) << irqfd.error().message();
    ASSERT_FALSE(vm_.irr(0x52));
    ASSERT_TRUE(efd->signal());
    EXPECT_TRUE(vm_.wait_irr(0x52));
  }
  // Deassigned: the same GSI accepts a new irqfd (KVM refuses a second registration of one eventfd).
  auto again = IrqFd::assign(*vm_.vm, route->gsi(), *efd);
  EXPECT_TRUE(again) << again.error().message();
  // The routing table still holds the legacy routes: an irqfd on GSI 4 is accepted after the commit.
  auto efd4 = EventFd::create();
  ASSERT_TRUE(efd4);
  auto legacy = IrqFd::assign(*vm_.vm, 4, *efd4);
  EXPECT_TRUE(legacy) << legacy.error().message();
}

// The platform's COM1 line, end to end through the evmm binary: testprog reads a line by IRQ4 ->
// IOAPIC, with the UART holding its interrupt level until the guest drains the FIFO.
TEST(IrqConcurrent, SerialInterruptThroughEvmm) {
  REQUIRE_KVM();
  ProcessOptions opts;
  opts.stdin_data = "hello irq\n";
  auto r = boot("testprog.mb.elf", "serialirq exit=0", 1, {}, opts);
  EXPECT_EQ(r.exit_status, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("serialirq: got hello irq"), std::string::npos) << r.out << r.err;
}

}  // namespace
}  // namespace evmm::testing
