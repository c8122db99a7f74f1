// Xen event channels (seed 002, DESIGN.md mechanism 3): the guest's port table, owned by userspace.
//
// The guest operations mirror Xen's do_event_channel_op (common/event_channel.c, Xen 4.17) for a
// domain with the 2-level ABI: they take the header's struct, fill its OUT fields, and return 0 or a
// negative Xen errno (xen/errno.h) for the hypercall layer to hand to the guest as is. Errors:
//   -ESRCH   alloc_unbound/status/reset naming a domain that does not exist; bind_interdomain to one
//   -EPERM   alloc_unbound/status/reset naming another domain that exists (the backend domain): the
//            XSM_TARGET check an unprivileged guest fails
//   -ENOSPC  no free port (get_free_port); checked before the remote port of bind_interdomain
//   -EINVAL  port out of range; close of a free port (or port 0); send on a free, reserved or VIRQ
//            port; bind_interdomain to a port that is not unbound towards us; virq >= NR_VIRQS; a
//            global VIRQ on a vCPU other than 0; bind_vcpu of an IPI, per-vCPU VIRQ or free port
//   -ENOENT  a vCPU that does not exist (bind_virq, bind_ipi, bind_vcpu: Xen's domain_vcpu() check)
//   -EEXIST  bind_virq of a VIRQ already bound on that vCPU
//   -ENOSYS  init_control, expand_array, set_priority: a Xen without the FIFO ABI does not know them
// Port validity: Xen's port_is_valid() is "below the event channels allocated so far", which grows in
// buckets whose size depends on Xen's build. Here every port below the 2-level limit is valid, so
// status of a never-used port answers EVTCHNSTAT_closed and unmask of it succeeds, where Xen could
// answer -EINVAL for a port beyond its last bucket. Every other case above follows Xen exactly.
//
// The VMM's backends appear to the guest as one remote domain (Options::backend_domid): a backend
// port is an interdomain channel whose far end is an eventfd or a callback in the VMM. A guest send
// on it signals the backend and touches no vCPU; the backend raises the guest's end from any thread.
//
// Threads: a shared lock covers send, unmask, status and raising; bind, close and the rest take it
// exclusively. Sending allocates nothing. The injector and backend callbacks run under the shared
// lock and must not call back into the table.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <utility>
#include <variant>
#include <vector>

#include "base/eventfd.h"
#include "base/result.h"
#include "kvm/kvm_uapi.h"
#include "xen/evtchn_2l.h"
#include "xen/xen_abi.h"

namespace evmm {

namespace detail {
struct EvtchnState;
}

// Injects the upcall vector into a vCPU (the VMM: an MSI to its APIC ID). Any thread may call it.
using EvtchnInjector = std::function<void(uint32_t vcpu)>;
// The far end of a backend port: an eventfd, which a kernel fast path could signal itself, or a
// callback for a backend that lives in the VMM.
using EvtchnBackendTarget = std::variant<std::shared_ptr<const EventFd>, std::function<void()>>;
// Installs the whole set of ports the kernel should deliver (KVM_XEN_ATTR_TYPE_EVTCHN entries), the
// way KVM_SET_GSI_ROUTING installs a routing table; seed 002 asks for one call that sets them all.
using EvtchnKernelCommit = std::function<Result<void>(std::span<const kvm_xen_hvm_attr>)>;

struct EvtchnStats {
  uint64_t lost = 0;              // deliveries with no usable shared_info or vcpu_info
  uint64_t backend_errors = 0;    // eventfd signals that failed
  uint64_t kernel_commit_errors = 0;
};

// A backend's end of an interdomain channel. Move-only; destroying it closes the backend's end, and
// the guest's port goes back to unbound (towards the backend domain), as when a remote domain closes.
class EvtchnBackendPort {
 public:
  EvtchnBackendPort() = default;
  EvtchnBackendPort(EvtchnBackendPort&& o) noexcept
      : state_(std::move(o.state_)), port_(std::exchange(o.port_, 0)), generation_(o.generation_) {}
  EvtchnBackendPort& operator=(EvtchnBackendPort&& o) noexcept;
  EvtchnBackendPort(const EvtchnBackendPort&) = delete;
  EvtchnBackendPort& operator=(const EvtchnBackendPort&) = delete;
  ~EvtchnBackendPort() { release(); }

  // The guest's port number.
  uint32_t port() const { return port_; }
  // Raises the guest's port; any thread, no allocation. ENOTCONN once the guest closed it (or the
  // table is gone): a port number the guest reuses is never raised by a stale handle.
  Result<void> raise() const;
  // Closes the backend's end now; nothing when already closed.
  void release();

 private:
  friend class EventChannels;
  EvtchnBackendPort(std::weak_ptr<detail::EvtchnState> state, uint32_t port, uint32_t generation)
      : state_(std::move(state)), port_(port), generation_(generation) {}
  std::weak_ptr<detail::EvtchnState> state_;
  uint32_t port_ = 0;
  uint32_t generation_ = 0;
};

class EventChannels {
 public:
  struct Options {
    XenWidth width = XenWidth::Bits64;
    uint32_t vcpus = 1;
    domid_t domid = 1;          // the guest's own domain id; DOMID_SELF means it
    domid_t backend_domid = 0;  // the domain the VMM's backends appear as (dom0, as with a toolstack)
    EvtchnInjector inject{};    // required
    EvtchnKernelCommit kernel_commit{};  // empty when there is no kernel fast path
    // Told after every set_pending, masked or not, under the shared lock (any thread): what a
    // vCPU blocked in SCHEDOP_poll waits for. Optional; must not call back into the table.
    std::function<void(uint32_t vcpu, uint32_t port)> on_pending{};
  };

  // pages must outlive the table and every backend handle's raise(). EINVAL for no vCPUs, no
  // injector, or domain ids that are reserved or equal.
  static Result<EventChannels> create(const EvtchnPages& pages, Options opts);
  ~EventChannels();
  EventChannels(EventChannels&&) noexcept;
  EventChannels& operator=(EventChannels&&) noexcept;

  uint32_t max_ports() const;
  const Evtchn2l& bits() const;
  // The guest's width decides the layout of its pages and the number of ports (4096 or 1024). Xen
  // latches it from the guest's mode when the guest sets up its interface; so does the VMM. EBUSY
  // when a port beyond the new limit is in use.
  XenWidth width() const;
  Result<void> set_width(XenWidth width);

  // Guest operations: 0 or a negative Xen errno (see the table at the top).
  int alloc_unbound(evtchn_alloc_unbound& op);
  int bind_interdomain(evtchn_bind_interdomain& op);
  int bind_virq(evtchn_bind_virq& op);
  int bind_ipi(evtchn_bind_ipi& op);
  int close(const evtchn_close& op);
  int send(const evtchn_send& op);
  int status(evtchn_status& op) const;
  int bind_vcpu(const evtchn_bind_vcpu& op);
  int unmask(const evtchn_unmask& op);
  int reset(const evtchn_reset& op);
  int init_control(evtchn_init_control& op);
  int expand_array(const evtchn_expand_array& op);
  int set_priority(const evtchn_set_priority& op);

  // VMM side. A new guest port connected to a backend, notifying vcpu. ENOSPC when the ports are
  // used up; ENOENT for a vCPU that does not exist.
  Result<EvtchnBackendPort> bind_backend(uint32_t vcpu, EvtchnBackendTarget target);
  // Connects a backend to a port the guest allocated with alloc_unbound towards backend_domid (the
  // usual way a frontend offers a channel). EINVAL when the port is not unbound towards it.
  Result<EvtchnBackendPort> connect_backend(uint32_t port, EvtchnBackendTarget target);
  // Raises the port bound to virq: the vCPU's own for a per-vCPU VIRQ (VIRQ_TIMER), vCPU 0's for a
  // global one. False when none is bound.
  bool raise_virq(uint32_t vcpu, uint32_t virq);

  // The set the kernel would deliver now: IPI ports, loopback interdomain ports, and backend ports
  // with an eventfd, each as a KVM_XEN_ATTR_TYPE_EVTCHN entry. Every change to it is committed whole
  // through Options::kernel_commit.
  std::vector<kvm_xen_hvm_attr> kernel_ports() const;

  EvtchnStats stats() const;

 private:
  explicit EventChannels(std::shared_ptr<detail::EvtchnState> state);
  std::shared_ptr<detail::EvtchnState> state_;
};

}  // namespace evmm
