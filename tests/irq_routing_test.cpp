// The PC's interrupt wiring on a real in-kernel irqchip: the 8254's GSI 0 must reach IOAPIC pin 2,
// where the MADT's interrupt source override and the MP table tell the guest to look for it.
#include <gtest/gtest.h>

#include "event/irq_routing.h"
#include "kvm/system.h"
#include "kvm/vm_fd.h"
#include "tests/kvm_test_util.h"

namespace evmm::testing {
namespace {

// Raises GSI 0 as the in-kernel PIT does and returns the IOAPIC's IRR.
uint32_t ioapic_irr_after_gsi0(bool install_pc_routes) {
  auto kvm = System::open();
  EXPECT_TRUE(kvm) << kvm.error().message();
  auto vm = kvm->create_vm();
  EXPECT_TRUE(vm && vm->create_irqchip());
  auto table = IrqRoutingTable::for_vm(*vm);
  EXPECT_TRUE(table);
  if (install_pc_routes) {
    EXPECT_TRUE((*table)->install());
  }
  EXPECT_TRUE(vm->irq_line(0, true));
  auto chip = vm->get_irqchip(KVM_IRQCHIP_IOAPIC);
  EXPECT_TRUE(chip) << chip.error().message();
  return chip ? chip->chip.ioapic.irr : 0;
}

TEST(IrqRoutingKvm, Gsi0ReachesIoapicPin2) {
  REQUIRE_KVM();
  uint32_t irr = ioapic_irr_after_gsi0(true);
  EXPECT_TRUE(irr & (1u << 2)) << std::hex << irr;
  EXPECT_FALSE(irr & (1u << 0)) << std::hex << irr;
}

// Why the table must be installed: KVM's own default wires GSI 0 to pin 0.
TEST(IrqRoutingKvm, KvmDefaultWouldUsePin0) {
  REQUIRE_KVM();
  uint32_t irr = ioapic_irr_after_gsi0(false);
  EXPECT_TRUE(irr & (1u << 0)) << std::hex << irr;
}

}  // namespace
}  // namespace evmm::testing
