#include "event/irq_routing.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace evmm {
namespace {

struct Recorder {
  std::vector<std::vector<kvm_irq_routing_entry>> commits;
  bool fail = false;
  IrqRoutingTable::Commit fn() {
    return [this](std::span<const kvm_irq_routing_entry> e) -> Result<void> {
      if (fail) return make_error(EINVAL, "refused");
      commits.emplace_back(e.begin(), e.end());
      return {};
    };
  }
};

int count_gsi(const std::vector<kvm_irq_routing_entry>& v, uint32_t gsi) {
  return static_cast<int>(std::count_if(v.begin(), v.end(), [&](const auto& e) { return e.gsi == gsi; }));
}

const kvm_irq_routing_entry* find(const std::vector<kvm_irq_routing_entry>& v, uint32_t gsi, uint32_t chip) {
  for (const auto& e : v)
    if (e.gsi == gsi && e.type == KVM_IRQ_ROUTING_IRQCHIP && e.u.irqchip.irqchip == chip) return &e;
  return nullptr;
}

TEST(IrqRouting, DefaultsAreThePcWiring) {
  auto v = IrqRoutingTable::default_routes();
  ASSERT_EQ(v.size(), 15u * 2 + 8);
  EXPECT_EQ(count_gsi(v, 2), 0);  // the cascade
  // The 8254 on GSI 0 reaches IOAPIC pin 2 (the MADT's IRQ0 override) and PIC pin 0.
  ASSERT_NE(find(v, 0, KVM_IRQCHIP_IOAPIC), nullptr);
  EXPECT_EQ(find(v, 0, KVM_IRQCHIP_IOAPIC)->u.irqchip.pin, 2u);
  for (uint32_t gsi = 1; gsi < 24; ++gsi) {
    if (gsi == 2) continue;
    auto* io = find(v, gsi, KVM_IRQCHIP_IOAPIC);
    ASSERT_NE(io, nullptr) << gsi;
    EXPECT_EQ(io->u.irqchip.pin, gsi);
  }
  for (uint32_t gsi = 0; gsi < 16; ++gsi) {
    if (gsi == 2) continue;
    auto* pic = find(v, gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE);
    ASSERT_NE(pic, nullptr) << gsi;
    EXPECT_EQ(pic->u.irqchip.pin, gsi % 8);
    EXPECT_EQ(count_gsi(v, gsi), 2);
  }
  for (uint32_t gsi = 16; gsi < 24; ++gsi) EXPECT_EQ(count_gsi(v, gsi), 1);
}

TEST(IrqRouting, InstallCommitsTheDefaults) {
  Recorder rec;
  IrqRoutingTable t(rec.fn(), 1024);
  ASSERT_TRUE(t.install());
  ASSERT_EQ(rec.commits.size(), 1u);
  EXPECT_EQ(rec.commits[0].size(), IrqRoutingTable::default_routes().size());
}

TEST(IrqRouting, MsiRoutesAllocateFrom24AndCommitTheWholeTable) {
  Recorder rec;
  IrqRoutingTable t(rec.fn(), 1024);
  EXPECT_TRUE(rec.commits.empty());
  auto a = t.add_msi({0xfee00000, 0x41});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->gsi(), 24u);
  auto b = t.add_msi({0xfee01000, 0x42});
  ASSERT_TRUE(b);
  EXPECT_EQ(b->gsi(), 25u);
  ASSERT_EQ(rec.commits.size(), 2u);
  const auto& last = rec.commits.back();
  EXPECT_EQ(last.size(), IrqRoutingTable::default_routes().size() + 2);
  const auto& e = last.back();
  EXPECT_EQ(e.gsi, 25u);
  EXPECT_EQ(e.type, static_cast<uint32_t>(KVM_IRQ_ROUTING_MSI));
  EXPECT_EQ(e.u.msi.address_lo, 0xfee01000u);
  EXPECT_EQ(e.u.msi.address_hi, 0u);
  EXPECT_EQ(e.u.msi.data, 0x42u);
}

TEST(IrqRouting, RemovingARouteRecommitsAndFreesItsGsi) {
  Recorder rec;
  IrqRoutingTable t(rec.fn(), 1024);
  auto a = *t.add_msi({0xfee00000, 0x41});
  {
    auto b = *t.add_msi({0xfee00000, 0x42});
    EXPECT_EQ(t.msi_count(), 2u);
  }
  EXPECT_EQ(t.msi_count(), 1u);
  EXPECT_EQ(rec.commits.size(), 3u);
  EXPECT_EQ(count_gsi(rec.commits.back(), 25), 0);
  EXPECT_EQ(count_gsi(rec.commits.back(), 24), 1);
  auto c = *t.add_msi({0xfee00000, 0x43});
  EXPECT_EQ(c.gsi(), 25u);
  // A moved route removes its entry once, from its new owner.
  MsiRoute moved = std::move(a);
  EXPECT_EQ(t.msi_count(), 2u);
  ASSERT_TRUE(moved.update({0xfee00000, 0x55}));
  EXPECT_EQ(rec.commits.back()[IrqRoutingTable::default_routes().size()].u.msi.data, 0x55u);
}

TEST(IrqRouting, ExhaustionIsENOSPC) {
  Recorder rec;
  IrqRoutingTable t(rec.fn(), 26);
  auto a = *t.add_msi({0xfee00000, 0x41});
  auto b = *t.add_msi({0xfee00000, 0x42});
  auto c = t.add_msi({0xfee00000, 0x43});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), ENOSPC);
  EXPECT_EQ(rec.commits.size(), 2u);
}

TEST(IrqRouting, AFailedCommitLeavesTheTableAsItWas) {
  Recorder rec;
  IrqRoutingTable t(rec.fn(), 1024);
  rec.fail = true;
  auto a = t.add_msi({0xfee00000, 0x41});
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code(), EINVAL);
  EXPECT_EQ(t.msi_count(), 0u);
  EXPECT_EQ(t.entries().size(), IrqRoutingTable::default_routes().size());
}

}  // namespace
}  // namespace evmm
