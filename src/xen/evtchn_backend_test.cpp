#include "xen/evtchn.h"

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <cerrno>
#include <chrono>
#include <thread>

#include "testing/evtchn_test_fixture.h"

namespace evmm {
namespace {

using testing::BufferPages;
using testing::Fixture;
using testing::kBackend;
using testing::kGuest;
using testing::make_efd;

// Backend ports: channels whose far end is a backend in the VMM, raised through a handle.

TEST(EvtchnTable, BackendPortSignalsItsEventFdAndTouchesNoVcpu) {
  Fixture f;
  auto efd = make_efd();
  auto port = f.table.bind_backend(1, efd);
  ASSERT_TRUE(port);
  uint32_t p = port->port();
  EXPECT_EQ(p, 1u);
  auto st = f.status(p);
  EXPECT_EQ(st.status, static_cast<uint32_t>(EVTCHNSTAT_interdomain));
  EXPECT_EQ(st.u.interdomain.dom, kBackend);
  EXPECT_EQ(st.vcpu, 1u);

  EXPECT_EQ(f.send(p), 0);
  EXPECT_EQ(f.send(p), 0);
  EXPECT_EQ(*efd->consume(), 2u);
  EXPECT_TRUE(f.injected.empty());
  EXPECT_FALSE(f.pending(p));
  EXPECT_EQ(f.pages.si64()->vcpu_info[1].evtchn_pending_sel, 0u);

  // The backend raises the guest's end, on the port's vCPU.
  EXPECT_TRUE(port->raise());
  EXPECT_TRUE(f.pending(p));
  EXPECT_EQ(f.injected, std::vector<uint32_t>{1});
  EXPECT_EQ(*efd->consume(), 0u);  // and does not signal itself
}

TEST(EvtchnTable, BackendCallbackPort) {
  Fixture f;
  int calls = 0;
  uint32_t p = f.alloc_unbound(kBackend);
  auto port = f.table.connect_backend(p, std::function<void()>([&] { calls++; }));
  ASSERT_TRUE(port);
  EXPECT_FALSE(f.pending(p));  // the backend's connect raises nothing on the guest's end
  EXPECT_EQ(f.send(p), 0);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(f.injected.empty());
  // A port unbound towards the guest itself, or already connected, is not the backend's to take.
  uint32_t q = f.alloc_unbound(DOMID_SELF);
  EXPECT_EQ(f.table.connect_backend(q, make_efd()).error().code(), EINVAL);
  EXPECT_EQ(f.table.connect_backend(p, make_efd()).error().code(), EINVAL);
  EXPECT_EQ(f.table.connect_backend(4096, make_efd()).error().code(), EINVAL);
}

TEST(EvtchnTable, BackendReleaseLeavesTheGuestPortUnbound) {
  Fixture f;
  auto port = *f.table.bind_backend(0, make_efd());
  uint32_t p = port.port();
  port.release();
  auto st = f.status(p);
  EXPECT_EQ(st.status, static_cast<uint32_t>(EVTCHNSTAT_unbound));
  EXPECT_EQ(st.u.unbound.dom, kBackend);
  EXPECT_EQ(port.raise().error().code(), ENOTCONN);
  // The guest's port can take a new backend.
  auto again = f.table.connect_backend(p, make_efd());
  ASSERT_TRUE(again);
  { EvtchnBackendPort moved = std::move(*again); }  // destroying the handle releases too
  EXPECT_EQ(f.status(p).status, static_cast<uint32_t>(EVTCHNSTAT_unbound));
}

TEST(EvtchnTable, StaleBackendHandleNeverTouchesAReusedPort) {
  Fixture f;
  auto efd = make_efd();
  auto port = *f.table.bind_backend(0, efd);
  uint32_t p = port.port();
  EXPECT_EQ(f.close(p), 0);  // the guest closes its end
  EXPECT_EQ(port.raise().error().code(), ENOTCONN);
  uint32_t ipi = f.bind_ipi(1);
  ASSERT_EQ(ipi, p);
  EXPECT_EQ(port.raise().error().code(), ENOTCONN);
  EXPECT_FALSE(f.pending(p));
  port.release();
  EXPECT_EQ(f.status(p).status, static_cast<uint32_t>(EVTCHNSTAT_ipi));
  EXPECT_EQ(f.send(p), 0);
  EXPECT_EQ(*efd->consume(), 0u);
  EXPECT_EQ(f.injected, std::vector<uint32_t>{1});
}

TEST(EvtchnTable, BackendHandleOutlivesTheTable) {
  BufferPages pages(XenWidth::Bits64);
  EvtchnBackendPort port;
  {
    auto t = *EventChannels::create(pages, {.inject = [](uint32_t) {}});
    port = *t.bind_backend(0, make_efd());
  }
  EXPECT_EQ(port.raise().error().code(), ENOTCONN);
  port.release();
}

// A backend raising from its own thread while the guest closes its port and rebinds the number to
// other channels: once the guest has closed it, the backend's handle never raises that number again.
TEST(EvtchnRaceConcurrent, StaleBackendRaisesNeverReachAReboundPort) {
  BufferPages pages(XenWidth::Bits64);
  std::atomic<uint64_t> injections{0};
  auto t = *EventChannels::create(pages, {.vcpus = 2, .inject = [&](uint32_t) { injections++; }});
  auto backend = *t.bind_backend(1, make_efd());
  const uint32_t p = backend.port();
  std::atomic<bool> stop{false};
  std::atomic<int> raised{0}, refused{0}, other_errors{0};
  std::barrier started(2);
  std::thread raiser([&, handle = std::move(backend)] {
    started.arrive_and_wait();
    while (!stop) {
      auto r = handle.raise();
      if (r) raised++;
      else if (r.error().code() == ENOTCONN) refused++;
      else other_errors++;
    }
  });
  started.arrive_and_wait();
  EXPECT_EQ(t.close({.port = p}), 0);
  // On a loaded host the loop below can end before the raiser is scheduled at all; let it meet the
  // closed port once first (for up to a second), so that the rebinds race a running raiser.
  for (int i = 0; i < 10000 && refused == 0; i++) std::this_thread::sleep_for(std::chrono::microseconds(100));
  int rebound_pending = 0;
  for (int i = 0; i < 3000; i++) {
    evtchn_bind_ipi ipi{.vcpu = 0, .port = 0};
    ASSERT_EQ(t.bind_ipi(ipi), 0);
    ASSERT_EQ(ipi.port, p);
    if (t.bits().is_pending(p)) rebound_pending++;
    EXPECT_EQ(t.close({.port = p}), 0);
    // The same number offered to the backend domain again, with a new backend.
    evtchn_alloc_unbound au{.dom = DOMID_SELF, .remote_dom = kBackend, .port = 0};
    ASSERT_EQ(t.alloc_unbound(au), 0);
    ASSERT_EQ(au.port, p);
    auto fresh = t.connect_backend(p, make_efd());
    ASSERT_TRUE(fresh);
    if (t.bits().is_pending(p)) rebound_pending++;
    EXPECT_EQ(t.close({.port = p}), 0);
  }
  stop = true;
  raiser.join();
  EXPECT_EQ(rebound_pending, 0);
  EXPECT_EQ(other_errors, 0);
  EXPECT_GT(refused, 0);
}

}  // namespace
}  // namespace evmm
