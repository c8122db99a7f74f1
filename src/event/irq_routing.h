// The VM's GSI routing table. KVM_SET_GSI_ROUTING replaces the whole table, so one object owns every
// entry: the irqchip defaults KVM installs with its irqchip, plus MSI routes allocated from GSI 24 up.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "base/result.h"
#include "kvm/kvm_uapi.h"
#include "kvm/vm_fd.h"

namespace evmm {

struct MsiMessage {
  uint64_t address = 0;  // 0xFEExxxxx: destination APIC ID in bits 19:12 (Intel SDM vol. 3 §11.11.1)
  uint32_t data = 0;     // vector in bits 7:0, delivery mode in bits 10:8
};

class IrqRoutingTable;

// A move-only MSI route; destroying it removes the entry and re-commits the table. The table must
// outlive it.
class MsiRoute {
 public:
  MsiRoute(MsiRoute&& o) noexcept : table_(std::exchange(o.table_, nullptr)), gsi_(o.gsi_) {}
  MsiRoute& operator=(MsiRoute&& o) noexcept;
  MsiRoute(const MsiRoute&) = delete;
  MsiRoute& operator=(const MsiRoute&) = delete;
  ~MsiRoute() { reset(); }

  uint32_t gsi() const { return gsi_; }
  // Points the route at another message (a guest reprogrammed the MSI); re-commits the table.
  Result<void> update(const MsiMessage& msg);

 private:
  friend class IrqRoutingTable;
  MsiRoute(IrqRoutingTable& table, uint32_t gsi) : table_(&table), gsi_(gsi) {}
  void reset();
  IrqRoutingTable* table_ = nullptr;
  uint32_t gsi_ = 0;
};

class IrqRoutingTable {
 public:
  // Installs a whole table: VmFd::set_gsi_routing for a VM, a recorder in tests.
  using Commit = std::function<Result<void>(std::span<const kvm_irq_routing_entry>)>;

  static constexpr uint32_t kIoapicPins = 24;
  static constexpr uint32_t kFirstMsiGsi = 24;

  // gsi_count: GSIs the kernel accepts (KVM_CAP_IRQ_ROUTING returns it). Commits nothing until
  // install() or the first MSI route.
  IrqRoutingTable(Commit commit, uint32_t gsi_count);
  // The VM must outlive the table.
  static Result<std::unique_ptr<IrqRoutingTable>> for_vm(const VmFd& vm);
  // The PC's wiring, as QEMU installs it: GSI n (0-15) to PIC pin n%8 of the master (n<8) or slave
  // and to IOAPIC pin n, except that GSI 0 (the in-kernel 8254) goes to IOAPIC pin 2 and GSI 2
  // (the cascade) has no route; GSI 16-23 to IOAPIC pin n only. KVM's own default
  // (kvm_setup_default_irq_routing) sends GSI 0 to IOAPIC pin 0, which contradicts the MADT's
  // IRQ0->GSI2 override and the MP table, so a VM must install() this table.
  static std::vector<kvm_irq_routing_entry> default_routes();
  // Commits the whole table (default routes and MSI routes).
  Result<void> install();
  // Allocates the lowest free GSI from 24, adds an MSI entry for it and commits. ENOSPC when the
  // GSIs are exhausted; on a failed commit the table is left as it was.
  Result<MsiRoute> add_msi(const MsiMessage& msg);

  // Everything the table would commit now, defaults first, MSI routes by GSI.
  std::vector<kvm_irq_routing_entry> entries() const;
  size_t msi_count() const;

 private:
  friend class MsiRoute;
  std::vector<kvm_irq_routing_entry> entries_locked() const;
  Result<void> set_msi(uint32_t gsi, const MsiMessage& msg);
  Result<void> remove_msi(uint32_t gsi);

  Commit commit_;
  uint32_t gsi_count_;
  mutable std::mutex mu_;
  std::map<uint32_t, MsiMessage> msi_;
};

}  // namespace evmm
