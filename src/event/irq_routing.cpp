#include "event/irq_routing.h"

#include "base/log.h"

namespace evmm {

namespace {

kvm_irq_routing_entry irqchip_entry(uint32_t gsi, uint32_t chip, uint32_t pin) {
  kvm_irq_routing_entry e{};
  e.gsi = gsi;
  e.type = KVM_IRQ_ROUTING_IRQCHIP;
  e.u.irqchip.irqchip = chip;
  e.u.irqchip.pin = pin;
  return e;
}

kvm_irq_routing_entry msi_entry(uint32_t gsi, const MsiMessage& m) {
  kvm_irq_routing_entry e{};
  e.gsi = gsi;
  e.type = KVM_IRQ_ROUTING_MSI;
  e.u.msi.address_lo = static_cast<uint32_t>(m.address);
  e.u.msi.address_hi = static_cast<uint32_t>(m.address >> 32);
  e.u.msi.data = m.data;
  return e;
}

}  // namespace

MsiRoute& MsiRoute::operator=(MsiRoute&& o) noexcept {
  if (this != &o) {
    reset();
    table_ = std::exchange(o.table_, nullptr);
    gsi_ = o.gsi_;
  }
  return *this;
}

Result<void> MsiRoute::update(const MsiMessage& msg) {
  if (!table_) return make_error(EINVAL, "MSI route: moved from");
  return table_->set_msi(gsi_, msg);
}

void MsiRoute::reset() {
  if (!table_) return;
  if (auto r = std::exchange(table_, nullptr)->remove_msi(gsi_); !r)
    LOG_WARN("removing MSI route on GSI {}: {}", gsi_, r.error().message());
}

IrqRoutingTable::IrqRoutingTable(Commit commit, uint32_t gsi_count) : commit_(std::move(commit)), gsi_count_(gsi_count) {}

Result<std::unique_ptr<IrqRoutingTable>> IrqRoutingTable::for_vm(const VmFd& vm) {
  int count = vm.check_extension(KVM_CAP_IRQ_ROUTING);
  if (count <= 0) return make_error(ENOTSUP, "KVM_CAP_IRQ_ROUTING is absent: no MSI routes on this host");
  return std::make_unique<IrqRoutingTable>(
      [&vm](std::span<const kvm_irq_routing_entry> e) { return vm.set_gsi_routing(e); }, static_cast<uint32_t>(count));
}

std::vector<kvm_irq_routing_entry> IrqRoutingTable::default_routes() {
  std::vector<kvm_irq_routing_entry> v;
  for (uint32_t gsi = 0; gsi < kIoapicPins; ++gsi) {
    // GSI 2 is the PICs' cascade and has no line of its own.
    if (gsi == 2) continue;
    if (gsi < 16) v.push_back(irqchip_entry(gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, gsi % 8));
    // The 8254 (GSI 0) is wired to IOAPIC pin 2, as the MADT override and the MP table say.
    v.push_back(irqchip_entry(gsi, KVM_IRQCHIP_IOAPIC, gsi == 0 ? 2 : gsi));
  }
  return v;
}

Result<void> IrqRoutingTable::install() {
  std::lock_guard<std::mutex> lock(mu_);
  return commit_(entries_locked());
}

std::vector<kvm_irq_routing_entry> IrqRoutingTable::entries_locked() const {
  auto v = default_routes();
  for (const auto& [gsi, msg] : msi_) v.push_back(msi_entry(gsi, msg));
  return v;
}

std::vector<kvm_irq_routing_entry> IrqRoutingTable::entries() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_locked();
}

size_t IrqRoutingTable::msi_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return msi_.size();
}

Result<MsiRoute> IrqRoutingTable::add_msi(const MsiMessage& msg) {
  std::lock_guard<std::mutex> lock(mu_);
  uint32_t gsi = kFirstMsiGsi;
  for (const auto& [used, _] : msi_) {
    if (used != gsi) break;
    ++gsi;
  }
  if (gsi >= gsi_count_)
    return make_error(ENOSPC, "no free GSI for an MSI route: all {} from {} are in use", gsi_count_ - kFirstMsiGsi,
                      kFirstMsiGsi);
  msi_[gsi] = msg;
  if (auto r = commit_(entries_locked()); !r) {
    msi_.erase(gsi);
    return tl::unexpected(r.error().wrap(fmt::format("adding MSI route on GSI {}", gsi)));
  }
  return MsiRoute(*this, gsi);
}

Result<void> IrqRoutingTable::set_msi(uint32_t gsi, const MsiMessage& msg) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = msi_.find(gsi);
  if (it == msi_.end()) return make_error(ENOENT, "no MSI route on GSI {}", gsi);
  MsiMessage old = std::exchange(it->second, msg);
  if (auto r = commit_(entries_locked()); !r) {
    it->second = old;
    return r;
  }
  return {};
}

Result<void> IrqRoutingTable::remove_msi(uint32_t gsi) {
  std::lock_guard<std::mutex> lock(mu_);
  // The entry goes even if the commit fails: the GSI must not stay allocated to a dead route.
  if (msi_.erase(gsi) == 0) return make_error(ENOENT, "no MSI route on GSI {}", gsi);
  return commit_(entries_locked());
}

}  // namespace evmm
