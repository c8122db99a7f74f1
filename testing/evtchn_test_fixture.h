// The event channel table over a buffer-backed shared_info, for the table's tests
// (src/xen/evtchn_test.cpp, src/xen/evtchn_backend_test.cpp): every injection is recorded.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "xen/evtchn.h"
#include "testing/evtchn_test_pages.h"

namespace evmm::testing {

inline constexpr domid_t kGuest = 5;
inline constexpr domid_t kBackend = 0;

// A table over a buffer-backed shared_info, recording every injection.
struct Fixture {
  explicit Fixture(XenWidth w = XenWidth::Bits64, uint32_t vcpus = 2, EvtchnKernelCommit commit = {})
      : pages(w),
        table(*EventChannels::create(pages, {.width = w,
                                             .vcpus = vcpus,
                                             .domid = kGuest,
                                             .backend_domid = kBackend,
                                             .inject = [this](uint32_t v) { injected.push_back(v); },
                                             .kernel_commit = std::move(commit)})) {}

  uint32_t alloc_unbound(domid_t remote = DOMID_SELF) {
    evtchn_alloc_unbound op{.dom = DOMID_SELF, .remote_dom = remote, .port = 0};
    EXPECT_EQ(table.alloc_unbound(op), 0);
    return op.port;
  }
  uint32_t bind_ipi(uint32_t vcpu) {
    evtchn_bind_ipi op{.vcpu = vcpu, .port = 0};
    EXPECT_EQ(table.bind_ipi(op), 0);
    return op.port;
  }
  int bind_virq(uint32_t virq, uint32_t vcpu, uint32_t* port = nullptr) {
    evtchn_bind_virq op{.virq = virq, .vcpu = vcpu, .port = 0};
    int rc = table.bind_virq(op);
    if (port) *port = op.port;
    return rc;
  }
  int bind_interdomain(domid_t dom, uint32_t rport, uint32_t* lport = nullptr) {
    evtchn_bind_interdomain op{.remote_dom = dom, .remote_port = rport, .local_port = 0};
    int rc = table.bind_interdomain(op);
    if (lport) *lport = op.local_port;
    return rc;
  }
  int send(uint32_t port) { return table.send({.port = port}); }
  int close(uint32_t port) { return table.close({.port = port}); }
  int bind_vcpu(uint32_t port, uint32_t vcpu) { return table.bind_vcpu({.port = port, .vcpu = vcpu}); }
  evtchn_status status(uint32_t port, domid_t dom = DOMID_SELF, int* rc = nullptr) {
    evtchn_status st;
    std::memset(&st, 0, sizeof st);
    st.dom = dom;
    st.port = port;
    int r = table.status(st);
    if (rc) *rc = r;
    else EXPECT_EQ(r, 0);
    return st;
  }
  bool pending(uint32_t port) const { return table.bits().is_pending(port); }
  // Acknowledges everything, as a guest's upcall handler would.
  void guest_ack() { pages.clear(); injected.clear(); }

  BufferPages pages;
  std::vector<uint32_t> injected;
  EventChannels table;
};

inline std::shared_ptr<const EventFd> make_efd() { return std::make_shared<const EventFd>(std::move(*EventFd::create())); }

}  // namespace evmm::testing
