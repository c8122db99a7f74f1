#include "xen/evtchn.h"

#include <array>
#include <cstring>
#include <mutex>
#include <shared_mutex>

#include "base/log.h"

namespace evmm {

namespace detail {
namespace {

// Xen's ECS_* channel states.
enum class PortState : uint8_t { Free, Reserved, Unbound, Interdomain, Virq, Ipi };

struct Port {
  PortState state = PortState::Free;
  bool backend = false;        // Interdomain with a VMM backend, not with another of the guest's ports
  uint32_t vcpu = 0;           // Xen's notify_vcpu_id: 0 for a fresh port
  uint32_t generation = 0;     // changes whenever a backend's claim on the port ends
  domid_t remote_dom = 0;      // Unbound: who may connect; Interdomain: the far end's domain
  uint32_t remote_port = 0;    // Interdomain: the far end's port (a backend mirrors ours: it has no port space)
  uint32_t virq = 0;
  EvtchnBackendTarget target;  // backend ports only
};

// Per-vCPU VIRQs bind once per vCPU; the rest are global, bound on vCPU 0 and retargetable. This is
// the 'V.'/'G.' classification in xen.h (Xen's virq_is_global); the x86 VIRQ_ARCH_* (VIRQ_MCA) are
// global.
bool virq_is_global(uint32_t virq) {
  switch (virq) {
    case VIRQ_TIMER:
    case VIRQ_DEBUG:
    case VIRQ_XENOPROF:
    case VIRQ_XENPMU:
      return false;
    default:
      return true;
  }
}

}  // namespace

struct EvtchnState {
  EvtchnState(const EvtchnPages& pages, EventChannels::Options o)
      : pages(pages), bits(o.width, pages), opts(std::move(o)), ports(kEvtchn2lLayout64.max_ports),
        virq_ports(opts.vcpus) {
    ports[0].state = PortState::Reserved;  // Xen's evtchn_init: port 0 is never handed out
  }

  uint32_t max_ports() const { return bits.layout().max_ports; }
  domid_t resolve(domid_t dom) const { return dom == DOMID_SELF ? opts.domid : dom; }

  // rcu_lock_domain_by_any_id + XSM_TARGET for an unprivileged guest: itself, or no one.
  int check_domain(domid_t dom) const {
    dom = resolve(dom);
    if (dom == opts.domid) return 0;
    return dom == opts.backend_domid ? -XEN_EPERM : -XEN_ESRCH;
  }

  // Xen's get_free_port: the lowest free port, or -ENOSPC.
  int find_free_port() const {
    for (uint32_t p = 1; p < max_ports(); p++)
      if (ports[p].state == PortState::Free) return static_cast<int>(p);
    return -XEN_ENOSPC;
  }

  // What a set_pending or unmask left to do for vcpu.
  void finish_delivery(Delivery d, uint32_t vcpu) {
    switch (d) {
      case Delivery::Upcall:
        opts.inject(vcpu);
        break;
      case Delivery::Lost:
        lost.fetch_add(1, std::memory_order_relaxed);
        break;
      case Delivery::None:
        break;
    }
  }

  void deliver(uint32_t port, uint32_t vcpu) {
    Delivery d = bits.set_pending(port, vcpu);
    if (opts.on_pending) opts.on_pending(vcpu, port);
    finish_delivery(d, vcpu);
  }

  void unmask(uint32_t port) {
    uint32_t vcpu = ports[port].vcpu;
    finish_delivery(bits.unmask(port, vcpu), vcpu);
  }

  void signal_backend(const Port& c) {
    if (auto* efd = std::get_if<std::shared_ptr<const EventFd>>(&c.target)) {
      // A failed signal is the VMM's problem, not the guest's: its send still succeeds.
      if (!*efd || !(*efd)->signal()) backend_errors.fetch_add(1, std::memory_order_relaxed);
    } else if (auto* fn = std::get_if<std::function<void()>>(&c.target); fn && *fn) {
      (*fn)();
    }
  }

  // Xen's evtchn_free: the pending bit is cleared so that a rebound port starts quiet, and the
  // binding goes back to vCPU 0.
  void free_channel(uint32_t port) {
    bits.clear_pending(port);
    uint32_t generation = ports[port].generation + 1;
    ports[port] = Port{};
    ports[port].generation = generation;
  }

  // Xen's evtchn_close; exclusive lock held.
  int close(uint32_t port) {
    if (port >= max_ports()) return -XEN_EINVAL;
    Port& c = ports[port];
    switch (c.state) {
      case PortState::Free:
      case PortState::Reserved:
        return -XEN_EINVAL;
      case PortState::Unbound:
      case PortState::Ipi:
        break;
      case PortState::Virq:
        for (auto& v : virq_ports)
          if (v[c.virq] == port) v[c.virq] = 0;
        break;
      case PortState::Interdomain:
        // The far end waits for a new connection, towards us (Xen: ECS_UNBOUND, remote = d1).
        if (!c.backend) {
          Port& peer = ports[c.remote_port];
          peer.state = PortState::Unbound;
          peer.remote_dom = opts.domid;
          peer.remote_port = 0;
        }
        break;
    }
    free_channel(port);
    return 0;
  }

  std::vector<kvm_xen_hvm_attr> build_kernel_ports() const {
    std::vector<kvm_xen_hvm_attr> out;
    for (uint32_t p = 1; p < max_ports(); p++) {
      const Port& c = ports[p];
      kvm_xen_hvm_attr a;
      std::memset(&a, 0, sizeof a);  // compared bytewise with the last commit
      a.type = KVM_XEN_ATTR_TYPE_EVTCHN;
      a.u.evtchn.send_port = p;
      if (c.state == PortState::Ipi) {
        a.u.evtchn.type = EVTCHNSTAT_ipi;
        a.u.evtchn.deliver.port.port = p;
        a.u.evtchn.deliver.port.vcpu = c.vcpu;
        a.u.evtchn.deliver.port.priority = KVM_IRQ_ROUTING_XEN_EVTCHN_PRIO_2LEVEL;
      } else if (c.state == PortState::Interdomain && !c.backend) {
        a.u.evtchn.type = EVTCHNSTAT_interdomain;
        a.u.evtchn.deliver.port.port = c.remote_port;
        a.u.evtchn.deliver.port.vcpu = ports[c.remote_port].vcpu;
        a.u.evtchn.deliver.port.priority = KVM_IRQ_ROUTING_XEN_EVTCHN_PRIO_2LEVEL;
      } else if (auto* efd = std::get_if<std::shared_ptr<const EventFd>>(&c.target);
                 c.state == PortState::Interdomain && efd && *efd) {
        // A callback backend stays out: the send must reach the VMM, which the kernel cannot call.
        a.u.evtchn.type = EVTCHNSTAT_interdomain;
        a.u.evtchn.deliver.eventfd.port = 0;
        a.u.evtchn.deliver.eventfd.fd = (*efd)->fd();
      } else {
        continue;
      }
      out.push_back(a);
    }
    return out;
  }

  // After every change to the table; exclusive lock held. A failed commit leaves the guest's
  // operation done (Xen cannot fail a close), so it is logged and counted.
  void commit_kernel_ports() {
    if (!opts.kernel_commit) return;
    std::vector<kvm_xen_hvm_attr> next = build_kernel_ports();
    if (next.size() == committed.size() &&
        (next.empty() || std::memcmp(next.data(), committed.data(), next.size() * sizeof(kvm_xen_hvm_attr)) == 0))
      return;
    if (auto r = opts.kernel_commit(next); !r) {
      kernel_commit_errors.fetch_add(1, std::memory_order_relaxed);
      LOG_WARN("Xen event channels: kernel port table not installed: {}", r.error().message());
      return;
    }
    committed = std::move(next);
  }

  // Makes port the guest's end of a backend channel; exclusive lock held. Returns the generation
  // that the backend's handle must match.
  uint32_t connect_backend(uint32_t port, EvtchnBackendTarget target) {
    Port& c = ports[port];
    c.state = PortState::Interdomain;
    c.backend = true;
    c.remote_dom = opts.backend_domid;
    c.remote_port = port;
    c.target = std::move(target);
    c.generation++;
    commit_kernel_ports();
    return c.generation;
  }

  const EvtchnPages& pages;
  Evtchn2l bits;  // replaced only by set_width, under the exclusive lock
  EventChannels::Options opts;
  mutable std::shared_mutex mu;
  std::vector<Port> ports;  // entries for the widest layout, never resized: send does not allocate
  std::vector<std::array<uint32_t, NR_VIRQS>> virq_ports;  // [vcpu][virq] -> port; 0 = unbound
  std::vector<kvm_xen_hvm_attr> committed;
  std::atomic<uint64_t> lost{0};
  std::atomic<uint64_t> backend_errors{0};
  std::atomic<uint64_t> kernel_commit_errors{0};
};

}  // namespace detail

using detail::PortState;

// ---- backend handles ----

EvtchnBackendPort& EvtchnBackendPort::operator=(EvtchnBackendPort&& o) noexcept {
  if (this != &o) {
    release();
    state_ = std::move(o.state_);
    port_ = std::exchange(o.port_, 0);
    generation_ = o.generation_;
  }
  return *this;
}

Result<void> EvtchnBackendPort::raise() const {
  auto s = state_.lock();
  if (!s || port_ == 0) return make_error(ENOTCONN, "Xen event channel: backend port is closed");
  std::shared_lock lock(s->mu);
  const auto& c = s->ports[port_];
  if (c.generation != generation_ || c.state != PortState::Interdomain || !c.backend)
    return make_error(ENOTCONN, "Xen event channel: the guest closed port {}", port_);
  s->deliver(port_, c.vcpu);
  return {};
}

void EvtchnBackendPort::release() {
  uint32_t port = std::exchange(port_, 0);
  auto s = state_.lock();
  state_.reset();
  if (!s || port == 0) return;
  std::unique_lock lock(s->mu);
  auto& c = s->ports[port];
  if (c.generation != generation_ || c.state != PortState::Interdomain || !c.backend) return;
  c.state = PortState::Unbound;
  c.backend = false;
  c.remote_dom = s->opts.backend_domid;
  c.remote_port = 0;
  c.target = {};
  c.generation++;
  s->commit_kernel_ports();
}

// ---- the table ----

Result<EventChannels> EventChannels::create(const EvtchnPages& pages, Options opts) {
  if (opts.vcpus == 0) return make_error(EINVAL, "Xen event channels: no vCPUs");
  if (!opts.inject) return make_error(EINVAL, "Xen event channels: no upcall injector");
  if (opts.domid >= DOMID_FIRST_RESERVED || opts.backend_domid >= DOMID_FIRST_RESERVED ||
      opts.domid == opts.backend_domid)
    return make_error(EINVAL, "Xen event channels: domain ids {} (guest) and {} (backends) must differ and be below {:#x}",
                      opts.domid, opts.backend_domid, DOMID_FIRST_RESERVED);
  return EventChannels(std::make_shared<detail::EvtchnState>(pages, std::move(opts)));
}

EventChannels::EventChannels(std::shared_ptr<detail::EvtchnState> state) : state_(std::move(state)) {}
EventChannels::~EventChannels() = default;
EventChannels::EventChannels(EventChannels&&) noexcept = default;
EventChannels& EventChannels::operator=(EventChannels&&) noexcept = default;

uint32_t EventChannels::max_ports() const {
  std::shared_lock lock(state_->mu);
  return state_->max_ports();
}
const Evtchn2l& EventChannels::bits() const { return state_->bits; }

XenWidth EventChannels::width() const {
  std::shared_lock lock(state_->mu);
  return state_->bits.layout().word_bits == 64 ? XenWidth::Bits64 : XenWidth::Bits32;
}

Result<void> EventChannels::set_width(XenWidth width) {
  auto& s = *state_;
  std::unique_lock lock(s.mu);
  const uint32_t max = evtchn_2l_layout(width).max_ports;
  for (uint32_t p = max; p < s.ports.size(); p++)
    if (s.ports[p].state != PortState::Free)
      return make_error(EBUSY, "Xen event channels: port {} is in use, beyond the {} ports of the new layout", p, max);
  s.bits = Evtchn2l(width, s.pages);
  return {};
}

int EventChannels::alloc_unbound(evtchn_alloc_unbound& op) {
  auto& s = *state_;
  std::unique_lock lock(s.mu);
  if (int rc = s.check_domain(op.dom)) return rc;
  int port = s.find_free_port();
  if (port < 0) return port;
  auto& c = s.ports[port];
  c.state = PortState::Unbound;
  c.remote_dom = s.resolve(op.remote_dom);
  op.port = port;
  return 0;
}

int EventChannels::bind_interdomain(evtchn_bind_interdomain& op) {
  auto& s = *state_;
  std::unique_lock lock(s.mu);
  domid_t rdom = s.resolve(op.remote_dom);
  if (rdom != s.opts.domid && rdom != s.opts.backend_domid) return -XEN_ESRCH;
  int lport = s.find_free_port();
  if (lport < 0) return lport;
  // The backend domain has no unbound ports of its own for us to bind: backends connect to ours.
  if (rdom == s.opts.backend_domid) return -XEN_EINVAL;
  uint32_t rport = op.remote_port;
  if (rport >= s.max_ports()) return -XEN_EINVAL;
  auto& r = s.ports[rport];
  if (r.state != PortState::Unbound || r.remote_dom != s.opts.domid) return -XEN_EINVAL;
  auto& l = s.ports[lport];
  l.state = PortState::Interdomain;
  l.remote_dom = s.opts.domid;
  l.remote_port = rport;
  r.state = PortState::Interdomain;
  r.remote_dom = s.opts.domid;
  r.remote_port = lport;
  // As Xen does: a send on the unbound end was dropped, so the new end starts pending in case.
  s.deliver(lport, l.vcpu);
  op.local_port = lport;
  s.commit_kernel_ports();
  return 0;
}

int EventChannels::bind_virq(evtchn_bind_virq& op) {
  auto& s = *state_;
  if (op.virq >= NR_VIRQS) return -XEN_EINVAL;
  if (detail::virq_is_global(op.virq) && op.vcpu != 0) return -XEN_EINVAL;
  if (op.vcpu >= s.opts.vcpus) return -XEN_ENOENT;
  std::unique_lock lock(s.mu);
  uint32_t& slot = s.virq_ports[op.vcpu][op.virq];
  if (slot != 0) return -XEN_EEXIST;
  int port = s.find_free_port();
  if (port < 0) return port;
  auto& c = s.ports[port];
  c.state = PortState::Virq;
  c.vcpu = op.vcpu;
  c.virq = op.virq;
  slot = port;
  op.port = port;
  return 0;
}

int EventChannels::bind_ipi(evtchn_bind_ipi& op) {
  auto& s = *state_;
  if (op.vcpu >= s.opts.vcpus) return -XEN_ENOENT;
  std::unique_lock lock(s.mu);
  int port = s.find_free_port();
  if (port < 0) return port;
  auto& c = s.ports[port];
  c.state = PortState::Ipi;
  c.vcpu = op.vcpu;
  op.port = port;
  s.commit_kernel_ports();
  return 0;
}

int EventChannels::close(const evtchn_close& op) {
  auto& s = *state_;
  std::unique_lock lock(s.mu);
  int rc = s.close(op.port);
  if (rc == 0) s.commit_kernel_ports();
  return rc;
}

int EventChannels::send(const evtchn_send& op) {
  auto& s = *state_;
  std::shared_lock lock(s.mu);
  if (op.port >= s.max_ports()) return -XEN_EINVAL;
  const auto& c = s.ports[op.port];
  switch (c.state) {
    case PortState::Interdomain:
      if (c.backend)
        s.signal_backend(c);
      else
        s.deliver(c.remote_port, s.ports[c.remote_port].vcpu);
      return 0;
    case PortState::Ipi:
      s.deliver(op.port, c.vcpu);
      return 0;
    case PortState::Unbound:
      return 0;  // Xen drops it silently; bind_interdomain makes up for it
    case PortState::Free:
    case PortState::Reserved:
    case PortState::Virq:
      return -XEN_EINVAL;
  }
  return -XEN_EINVAL;
}

int EventChannels::status(evtchn_status& op) const {
  auto& s = *state_;
  std::shared_lock lock(s.mu);
  if (int rc = s.check_domain(op.dom)) return rc;
  if (op.port >= s.max_ports()) return -XEN_EINVAL;
  const auto& c = s.ports[op.port];
  // Only the fields Xen writes: the rest of the union comes back as the guest passed it.
  switch (c.state) {
    case PortState::Free:
    case PortState::Reserved:
      op.status = EVTCHNSTAT_closed;
      break;
    case PortState::Unbound:
      op.status = EVTCHNSTAT_unbound;
      op.u.unbound.dom = c.remote_dom;
      break;
    case PortState::Interdomain:
      op.status = EVTCHNSTAT_interdomain;
      op.u.interdomain.dom = c.remote_dom;
      op.u.interdomain.port = c.remote_port;
      break;
    case PortState::Virq:
      op.status = EVTCHNSTAT_virq;
      op.u.virq = c.virq;
      break;
    case PortState::Ipi:
      op.status = EVTCHNSTAT_ipi;
      break;
  }
  op.vcpu = c.vcpu;
  return 0;
}

int EventChannels::bind_vcpu(const evtchn_bind_vcpu& op) {
  auto& s = *state_;
  if (op.vcpu >= s.opts.vcpus) return -XEN_ENOENT;
  std::unique_lock lock(s.mu);
  if (op.port >= s.max_ports()) return -XEN_EINVAL;
  auto& c = s.ports[op.port];
  switch (c.state) {
    case PortState::Virq:
      // A global VIRQ stays in vCPU 0's table; only where it notifies moves.
      if (!detail::virq_is_global(c.virq)) return -XEN_EINVAL;
      break;
    case PortState::Unbound:
    case PortState::Interdomain:
      break;
    case PortState::Free:
    case PortState::Reserved:
    case PortState::Ipi:
      return -XEN_EINVAL;
  }
  c.vcpu = op.vcpu;
  s.commit_kernel_ports();
  return 0;
}

int EventChannels::unmask(const evtchn_unmask& op) {
  auto& s = *state_;
  std::shared_lock lock(s.mu);
  if (op.port >= s.max_ports()) return -XEN_EINVAL;
  s.unmask(op.port);
  return 0;
}

int EventChannels::reset(const evtchn_reset& op) {
  auto& s = *state_;
  std::unique_lock lock(s.mu);
  if (int rc = s.check_domain(op.dom)) return rc;
  for (uint32_t p = 1; p < s.max_ports(); p++) (void)s.close(p);
  s.commit_kernel_ports();
  return 0;
}

int EventChannels::init_control(evtchn_init_control&) { return -XEN_ENOSYS; }
int EventChannels::expand_array(const evtchn_expand_array&) { return -XEN_ENOSYS; }
int EventChannels::set_priority(const evtchn_set_priority&) { return -XEN_ENOSYS; }

Result<EvtchnBackendPort> EventChannels::bind_backend(uint32_t vcpu, EvtchnBackendTarget target) {
  auto& s = *state_;
  if (vcpu >= s.opts.vcpus) return make_error(ENOENT, "Xen backend port: no vCPU {}", vcpu);
  std::unique_lock lock(s.mu);
  int port = s.find_free_port();
  if (port < 0) return make_error(ENOSPC, "Xen backend port: all {} ports in use", s.max_ports());
  s.ports[port].vcpu = vcpu;
  return EvtchnBackendPort(state_, port, s.connect_backend(port, std::move(target)));
}

Result<EvtchnBackendPort> EventChannels::connect_backend(uint32_t port, EvtchnBackendTarget target) {
  auto& s = *state_;
  std::unique_lock lock(s.mu);
  if (port >= s.max_ports() || s.ports[port].state != PortState::Unbound ||
      s.ports[port].remote_dom != s.opts.backend_domid)
    return make_error(EINVAL, "Xen backend port: port {} is not unbound towards domain {}", port, s.opts.backend_domid);
  return EvtchnBackendPort(state_, port, s.connect_backend(port, std::move(target)));
}

bool EventChannels::raise_virq(uint32_t vcpu, uint32_t virq) {
  auto& s = *state_;
  if (virq >= NR_VIRQS || vcpu >= s.opts.vcpus) return false;
  std::shared_lock lock(s.mu);
  bool global = detail::virq_is_global(virq);
  uint32_t port = s.virq_ports[global ? 0 : vcpu][virq];
  if (port == 0) return false;
  s.deliver(port, s.ports[port].vcpu);
  return true;
}

std::vector<kvm_xen_hvm_attr> EventChannels::kernel_ports() const {
  std::shared_lock lock(state_->mu);
  return state_->build_kernel_ports();
}

EvtchnStats EventChannels::stats() const {
  return EvtchnStats{
      .lost = state_->lost.load(std::memory_order_relaxed),
      .backend_errors = state_->backend_errors.load(std::memory_order_relaxed),
      .kernel_commit_errors = state_->kernel_commit_errors.load(std::memory_order_relaxed),
  };
}

}  // namespace evmm
