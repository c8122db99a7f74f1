#include "xen/evtchn.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>

#include "testing/evtchn_test_fixture.h"

namespace evmm {
namespace {

using testing::BufferPages;
using testing::Fixture;
using testing::kBackend;
using testing::kGuest;
using testing::make_efd;

TEST(EvtchnTable, CreateRefusesBadOptions) {
  BufferPages pages(XenWidth::Bits64);
  auto inject = [](uint32_t) {};
  EXPECT_EQ(EventChannels::create(pages, {.vcpus = 0, .inject = inject}).error().code(), EINVAL);
  EXPECT_EQ(EventChannels::create(pages, {.vcpus = 1}).error().code(), EINVAL);
  EXPECT_EQ(EventChannels::create(pages, {.domid = 3, .backend_domid = 3, .inject = inject}).error().code(), EINVAL);
  EXPECT_EQ(EventChannels::create(pages, {.domid = DOMID_SELF, .inject = inject}).error().code(), EINVAL);
  EXPECT_TRUE(EventChannels::create(pages, {.inject = inject}));
}

TEST(EvtchnTable, LowestFreePortFirstAndNeverZero) {
  Fixture f;
  EXPECT_EQ(f.alloc_unbound(), 1u);
  EXPECT_EQ(f.bind_ipi(0), 2u);
  EXPECT_EQ(f.alloc_unbound(), 3u);
  EXPECT_EQ(f.close(2), 0);
  EXPECT_EQ(f.close(1), 0);
  EXPECT_EQ(f.alloc_unbound(), 1u);
  EXPECT_EQ(f.bind_ipi(1), 2u);
  EXPECT_EQ(f.alloc_unbound(), 4u);
  EXPECT_EQ(f.status(0).status, static_cast<uint32_t>(EVTCHNSTAT_closed));
  EXPECT_EQ(f.close(0), -XEN_EINVAL);  // reserved
}

void exhaust(XenWidth w, uint32_t limit) {
  Fixture f(w);
  ASSERT_EQ(f.table.max_ports(), limit);
  uint32_t got = 0;
  int rc = 0;
  for (uint32_t i = 0; i < limit + 10; i++) {
    evtchn_alloc_unbound op{.dom = DOMID_SELF, .remote_dom = DOMID_SELF, .port = 0};
    rc = f.table.alloc_unbound(op);
    if (rc != 0) break;
    EXPECT_EQ(op.port, got + 1);
    got++;
  }
  EXPECT_EQ(rc, -XEN_ENOSPC);
  EXPECT_EQ(got, limit - 1);  // every port but 0
  // Every allocating operation now says the same.
  evtchn_bind_ipi ipi{.vcpu = 0, .port = 0};
  EXPECT_EQ(f.table.bind_ipi(ipi), -XEN_ENOSPC);
  EXPECT_EQ(f.bind_virq(VIRQ_TIMER, 0), -XEN_ENOSPC);
  EXPECT_EQ(f.bind_interdomain(DOMID_SELF, 1), -XEN_ENOSPC);
  EXPECT_EQ(f.table.bind_backend(0, make_efd()).error().code(), ENOSPC);
  // One close makes exactly one port available again: the one closed.
  EXPECT_EQ(f.close(limit / 2), 0);
  EXPECT_EQ(f.table.bind_ipi(ipi), 0);
  EXPECT_EQ(ipi.port, limit / 2);
  EXPECT_EQ(f.table.bind_ipi(ipi), -XEN_ENOSPC);
}

TEST(EvtchnTable, ExhaustionAtExactly4096For64Bit) { exhaust(XenWidth::Bits64, 4096); }
TEST(EvtchnTable, ExhaustionAtExactly1024For32Bit) { exhaust(XenWidth::Bits32, 1024); }

TEST(EvtchnTable, CloseClearsPendingAndRebindStartsOnVcpu0) {
  Fixture f;
  uint32_t p = f.alloc_unbound();
  EXPECT_EQ(f.bind_vcpu(p, 1), 0);
  EXPECT_EQ(f.status(p).vcpu, 1u);
  uint32_t q;
  ASSERT_EQ(f.bind_interdomain(DOMID_SELF, p, &q), 0);
  EXPECT_EQ(f.send(q), 0);
  EXPECT_TRUE(f.pending(p));
  EXPECT_EQ(f.close(p), 0);
  EXPECT_FALSE(f.pending(p));
  EXPECT_EQ(f.alloc_unbound(), p);
  EXPECT_EQ(f.status(p).vcpu, 0u);
}

TEST(EvtchnTable, LoopbackInterdomain) {
  Fixture f;
  uint32_t a = f.alloc_unbound(DOMID_SELF);
  auto st = f.status(a);
  EXPECT_EQ(st.status, static_cast<uint32_t>(EVTCHNSTAT_unbound));
  EXPECT_EQ(st.u.unbound.dom, kGuest);  // DOMID_SELF is recorded as the guest's own id
  EXPECT_EQ(f.bind_vcpu(a, 1), 0);
  uint32_t b;
  ASSERT_EQ(f.bind_interdomain(kGuest, a, &b), 0);
  EXPECT_EQ(b, a + 1);
  // Xen sets the new end pending in case a send was dropped while the far end was unbound.
  EXPECT_TRUE(f.pending(b));
  EXPECT_FALSE(f.pending(a));
  EXPECT_EQ(f.injected, std::vector<uint32_t>{0});
  st = f.status(b);
  EXPECT_EQ(st.status, static_cast<uint32_t>(EVTCHNSTAT_interdomain));
  EXPECT_EQ(st.u.interdomain.dom, kGuest);
  EXPECT_EQ(st.u.interdomain.port, a);
  EXPECT_EQ(f.status(a).u.interdomain.port, b);

  // A send on one end raises the other, on the other's vCPU.
  f.guest_ack();
  EXPECT_EQ(f.send(b), 0);
  EXPECT_TRUE(f.pending(a));
  EXPECT_FALSE(f.pending(b));
  EXPECT_EQ(f.injected, std::vector<uint32_t>{1});
  EXPECT_EQ(f.pages.si64()->vcpu_info[1].evtchn_upcall_pending, 1u);
  EXPECT_EQ(f.pages.si64()->vcpu_info[0].evtchn_upcall_pending, 0u);
  f.guest_ack();
  EXPECT_EQ(f.send(a), 0);
  EXPECT_TRUE(f.pending(b));
  EXPECT_EQ(f.injected, std::vector<uint32_t>{0});

  // Closing one end leaves the other unbound towards us, ready to be bound again; sends on it are
  // dropped without error.
  f.guest_ack();
  EXPECT_EQ(f.close(a), 0);
  st = f.status(b);
  EXPECT_EQ(st.status, static_cast<uint32_t>(EVTCHNSTAT_unbound));
  EXPECT_EQ(st.u.unbound.dom, kGuest);
  EXPECT_EQ(f.send(b), 0);
  EXPECT_FALSE(f.pending(b));
  EXPECT_TRUE(f.injected.empty());
  uint32_t c;
  EXPECT_EQ(f.bind_interdomain(DOMID_SELF, b, &c), 0);
  EXPECT_EQ(c, a);  // the lowest free port again
}

TEST(EvtchnTable, VirqTimerIsPerVcpu) {
  Fixture f;
  uint32_t t0, t1;
  ASSERT_EQ(f.bind_virq(VIRQ_TIMER, 0, &t0), 0);
  ASSERT_EQ(f.bind_virq(VIRQ_TIMER, 1, &t1), 0);
  EXPECT_NE(t0, t1);
  EXPECT_EQ(f.bind_virq(VIRQ_TIMER, 1), -XEN_EEXIST);
  auto st = f.status(t1);
  EXPECT_EQ(st.status, static_cast<uint32_t>(EVTCHNSTAT_virq));
  EXPECT_EQ(st.u.virq, static_cast<uint32_t>(VIRQ_TIMER));
  EXPECT_EQ(st.vcpu, 1u);

  EXPECT_TRUE(f.table.raise_virq(1, VIRQ_TIMER));
  EXPECT_TRUE(f.pending(t1));
  EXPECT_FALSE(f.pending(t0));
  EXPECT_EQ(f.injected, std::vector<uint32_t>{1});
  EXPECT_FALSE(f.table.raise_virq(0, VIRQ_DEBUG));  // not bound
  EXPECT_FALSE(f.table.raise_virq(2, VIRQ_TIMER));  // no such vCPU

  EXPECT_EQ(f.send(t1), -XEN_EINVAL);  // a guest cannot send on a VIRQ
  EXPECT_EQ(f.bind_vcpu(t1, 0), -XEN_EINVAL);
  EXPECT_EQ(f.close(t1), 0);
  EXPECT_FALSE(f.table.raise_virq(1, VIRQ_TIMER));
  EXPECT_EQ(f.bind_virq(VIRQ_TIMER, 1), 0);
}

TEST(EvtchnTable, GlobalVirqBindsOnVcpu0AndCanMove) {
  Fixture f;
  EXPECT_EQ(f.bind_virq(VIRQ_CONSOLE, 1), -XEN_EINVAL);
  uint32_t p;
  ASSERT_EQ(f.bind_virq(VIRQ_CONSOLE, 0, &p), 0);
  EXPECT_EQ(f.bind_vcpu(p, 1), 0);
  EXPECT_EQ(f.status(p).vcpu, 1u);
  EXPECT_TRUE(f.table.raise_virq(0, VIRQ_CONSOLE));
  EXPECT_EQ(f.injected, std::vector<uint32_t>{1});
  EXPECT_EQ(f.bind_virq(VIRQ_CONSOLE, 0), -XEN_EEXIST);  // still held in vCPU 0's table
}

TEST(EvtchnTable, IpiNotifiesItsVcpuAndCannotMove) {
  Fixture f;
  uint32_t p = f.bind_ipi(1);
  EXPECT_EQ(f.send(p), 0);
  EXPECT_EQ(f.injected, std::vector<uint32_t>{1});
  EXPECT_EQ(f.pages.si64()->vcpu_info[1].evtchn_pending_sel, 1u);
  EXPECT_EQ(f.bind_vcpu(p, 0), -XEN_EINVAL);
  auto st = f.status(p);
  EXPECT_EQ(st.status, static_cast<uint32_t>(EVTCHNSTAT_ipi));
  EXPECT_EQ(st.vcpu, 1u);
}

TEST(EvtchnTable, MaskedIpiThenUnmaskReraises) {
  Fixture f;
  uint32_t p = f.bind_ipi(0);
  f.pages.si64()->evtchn_mask[0] = 1ull << p;
  EXPECT_EQ(f.send(p), 0);
  EXPECT_TRUE(f.pending(p));
  EXPECT_TRUE(f.injected.empty());
  EXPECT_EQ(f.table.unmask({.port = p}), 0);
  EXPECT_EQ(f.injected, std::vector<uint32_t>{0});
  EXPECT_EQ(f.pages.si64()->evtchn_mask[0], 0u);
  EXPECT_EQ(f.pages.si64()->vcpu_info[0].evtchn_upcall_pending, 1u);
}

TEST(EvtchnTable, DoubleSendInjectsOnce) {
  Fixture f;
  uint32_t p = f.bind_ipi(0);
  EXPECT_EQ(f.send(p), 0);
  EXPECT_EQ(f.send(p), 0);
  EXPECT_EQ(f.injected, std::vector<uint32_t>{0});
}

TEST(EvtchnTable, ThirtyTwoBitGuestDeliversInItsOwnLayout) {
  Fixture f(XenWidth::Bits32);
  uint32_t p = 0;
  for (int i = 0; i < 33; i++) p = f.bind_ipi(1);
  ASSERT_EQ(p, 33u);
  f.guest_ack();
  EXPECT_EQ(f.send(33), 0);
  EXPECT_EQ(f.pages.si32()->evtchn_pending[1], 0b10u);
  EXPECT_EQ(f.pages.si32()->vcpu_info[1].evtchn_pending_sel, 0b10u);
  EXPECT_EQ(f.injected, std::vector<uint32_t>{1});
  EXPECT_EQ(f.send(1024), -XEN_EINVAL);
}

TEST(EvtchnTable, StatusFillsOnlyWhatXenFills) {
  Fixture f;
  evtchn_status st;
  std::memset(&st, 0xAA, sizeof st);
  st.dom = DOMID_SELF;
  st.port = 100;  // never used
  EXPECT_EQ(f.table.status(st), 0);
  EXPECT_EQ(st.status, static_cast<uint32_t>(EVTCHNSTAT_closed));
  EXPECT_EQ(st.vcpu, 0u);
  EXPECT_EQ(st.u.virq, 0xAAAAAAAAu);  // untouched, as in Xen
  st.dom = kGuest;  // the guest's own id works as DOMID_SELF does
  EXPECT_EQ(f.table.status(st), 0);
  int rc;
  f.status(1, 77, &rc);
  EXPECT_EQ(rc, -XEN_ESRCH);
  f.status(1, kBackend, &rc);
  EXPECT_EQ(rc, -XEN_EPERM);
  f.status(4096, DOMID_SELF, &rc);
  EXPECT_EQ(rc, -XEN_EINVAL);
}

TEST(EvtchnTable, ErrorCodesAreXens) {
  // Xen's values, which are also Linux's.
  static_assert(XEN_EINVAL == EINVAL && XEN_ENOENT == ENOENT && XEN_EEXIST == EEXIST && XEN_ENOSPC == ENOSPC &&
                XEN_ESRCH == ESRCH && XEN_EPERM == EPERM && XEN_ENOSYS == ENOSYS);
  Fixture f(XenWidth::Bits64, 2);
  uint32_t unbound = f.alloc_unbound(DOMID_SELF);
  uint32_t to_backend = f.alloc_unbound(kBackend);
  uint32_t ipi = f.bind_ipi(0);

  // close
  EXPECT_EQ(f.close(0), -XEN_EINVAL);
  EXPECT_EQ(f.close(50), -XEN_EINVAL);
  EXPECT_EQ(f.close(4096), -XEN_EINVAL);
  // send
  EXPECT_EQ(f.send(50), -XEN_EINVAL);
  EXPECT_EQ(f.send(0), -XEN_EINVAL);
  EXPECT_EQ(f.send(4096), -XEN_EINVAL);
  EXPECT_EQ(f.send(unbound), 0);  // dropped
  EXPECT_FALSE(f.pending(unbound));
  // alloc_unbound: only for itself
  evtchn_alloc_unbound au{.dom = 77, .remote_dom = DOMID_SELF, .port = 0};
  EXPECT_EQ(f.table.alloc_unbound(au), -XEN_ESRCH);
  au.dom = kBackend;
  EXPECT_EQ(f.table.alloc_unbound(au), -XEN_EPERM);
  // bind_interdomain
  EXPECT_EQ(f.bind_interdomain(77, unbound), -XEN_ESRCH);
  EXPECT_EQ(f.bind_interdomain(kBackend, 1), -XEN_EINVAL);
  EXPECT_EQ(f.bind_interdomain(DOMID_SELF, ipi), -XEN_EINVAL);         // not unbound
  EXPECT_EQ(f.bind_interdomain(DOMID_SELF, to_backend), -XEN_EINVAL);  // unbound, but not towards us
  EXPECT_EQ(f.bind_interdomain(DOMID_SELF, 4096), -XEN_EINVAL);
  EXPECT_EQ(f.bind_interdomain(DOMID_SELF, 50), -XEN_EINVAL);  // free
  // bind_virq
  EXPECT_EQ(f.bind_virq(NR_VIRQS, 0), -XEN_EINVAL);
  EXPECT_EQ(f.bind_virq(VIRQ_TIMER, 2), -XEN_ENOENT);
  EXPECT_EQ(f.bind_virq(VIRQ_CONSOLE, 2), -XEN_EINVAL);  // the global check comes first
  // bind_ipi
  evtchn_bind_ipi bi{.vcpu = 2, .port = 0};
  EXPECT_EQ(f.table.bind_ipi(bi), -XEN_ENOENT);
  // bind_vcpu: the vCPU is checked before the port
  EXPECT_EQ(f.bind_vcpu(4096, 2), -XEN_ENOENT);
  EXPECT_EQ(f.bind_vcpu(4096, 1), -XEN_EINVAL);
  EXPECT_EQ(f.bind_vcpu(50, 1), -XEN_EINVAL);
  EXPECT_EQ(f.bind_vcpu(0, 1), -XEN_EINVAL);
  // unmask
  EXPECT_EQ(f.table.unmask({.port = 4096}), -XEN_EINVAL);
  EXPECT_EQ(f.table.unmask({.port = 50}), 0);  // in range: Xen unmasks whatever port it is
  // reset
  EXPECT_EQ(f.table.reset({.dom = 77}), -XEN_ESRCH);
  EXPECT_EQ(f.table.reset({.dom = kBackend}), -XEN_EPERM);
  // FIFO ABI operations are unknown here
  evtchn_init_control ic{};
  EXPECT_EQ(f.table.init_control(ic), -XEN_ENOSYS);
  EXPECT_EQ(f.table.expand_array({.array_gfn = 1}), -XEN_ENOSYS);
  EXPECT_EQ(f.table.set_priority({.port = ipi, .priority = 1}), -XEN_ENOSYS);
  // Nothing above changed the table.
  EXPECT_EQ(f.status(unbound).status, static_cast<uint32_t>(EVTCHNSTAT_unbound));
  EXPECT_EQ(f.status(ipi).status, static_cast<uint32_t>(EVTCHNSTAT_ipi));
  EXPECT_EQ(f.alloc_unbound(), 4u);
}

TEST(EvtchnTable, BindVcpuRetargetsUnboundAndInterdomain) {
  Fixture f;
  uint32_t a = f.alloc_unbound();
  EXPECT_EQ(f.bind_vcpu(a, 1), 0);
  uint32_t b;
  ASSERT_EQ(f.bind_interdomain(DOMID_SELF, a, &b), 0);
  EXPECT_EQ(f.status(a).vcpu, 1u);  // kept through the connection
  EXPECT_EQ(f.bind_vcpu(b, 1), 0);
  f.guest_ack();
  EXPECT_EQ(f.send(a), 0);
  EXPECT_EQ(f.injected, std::vector<uint32_t>{1});
}

TEST(EvtchnTable, ResetClosesEverything) {
  Fixture f;
  uint32_t a = f.alloc_unbound();
  uint32_t b;
  ASSERT_EQ(f.bind_interdomain(DOMID_SELF, a, &b), 0);
  uint32_t ipi = f.bind_ipi(1);
  uint32_t timer;
  ASSERT_EQ(f.bind_virq(VIRQ_TIMER, 1, &timer), 0);
  auto backend = *f.table.bind_backend(0, make_efd());
  EXPECT_EQ(f.table.reset({.dom = DOMID_SELF}), 0);
  for (uint32_t p : {a, b, ipi, timer, backend.port()}) {
    EXPECT_EQ(f.status(p).status, static_cast<uint32_t>(EVTCHNSTAT_closed)) << p;
    EXPECT_FALSE(f.pending(p)) << p;
  }
  EXPECT_EQ(backend.raise().error().code(), ENOTCONN);
  EXPECT_EQ(f.bind_virq(VIRQ_TIMER, 1), 0);
  EXPECT_EQ(f.alloc_unbound(), 2u);
}

TEST(EvtchnTable, KernelPortsAreReplacedWhole) {
  std::vector<std::vector<kvm_xen_hvm_attr>> commits;
  Fixture f(XenWidth::Bits64, 2, [&](std::span<const kvm_xen_hvm_attr> all) -> Result<void> {
    commits.emplace_back(all.begin(), all.end());
    return {};
  });
  uint32_t ipi = f.bind_ipi(1);
  ASSERT_EQ(commits.size(), 1u);
  ASSERT_EQ(commits[0].size(), 1u);
  const auto& e = commits[0][0].u.evtchn;
  EXPECT_EQ(commits[0][0].type, KVM_XEN_ATTR_TYPE_EVTCHN);
  EXPECT_EQ(e.send_port, ipi);
  EXPECT_EQ(e.type, static_cast<uint32_t>(EVTCHNSTAT_ipi));
  EXPECT_EQ(e.deliver.port.port, ipi);
  EXPECT_EQ(e.deliver.port.vcpu, 1u);
  EXPECT_EQ(e.deliver.port.priority, KVM_IRQ_ROUTING_XEN_EVTCHN_PRIO_2LEVEL);

  // An unbound port and a VIRQ are not the kernel's: no commit for them.
  uint32_t a = f.alloc_unbound();
  EXPECT_EQ(f.bind_virq(VIRQ_TIMER, 0), 0);
  EXPECT_EQ(commits.size(), 1u);

  uint32_t b;
  ASSERT_EQ(f.bind_interdomain(DOMID_SELF, a, &b), 0);
  ASSERT_EQ(commits.size(), 2u);
  ASSERT_EQ(commits[1].size(), 3u);  // the IPI and both loopback ends
  EXPECT_EQ(commits[1][1].u.evtchn.send_port, a);
  EXPECT_EQ(commits[1][1].u.evtchn.deliver.port.port, b);
  EXPECT_EQ(commits[1][2].u.evtchn.send_port, b);
  EXPECT_EQ(commits[1][2].u.evtchn.deliver.port.port, a);

  // Moving the receiving end changes what the sending end's entry says.
  EXPECT_EQ(f.bind_vcpu(a, 1), 0);
  ASSERT_EQ(commits.size(), 3u);
  EXPECT_EQ(commits[2][2].u.evtchn.deliver.port.vcpu, 1u);

  auto efd = make_efd();
  auto backend = *f.table.bind_backend(0, efd);
  ASSERT_EQ(commits.size(), 4u);
  const auto& be = commits[3].back().u.evtchn;
  EXPECT_EQ(be.send_port, backend.port());
  EXPECT_EQ(be.type, static_cast<uint32_t>(EVTCHNSTAT_interdomain));
  EXPECT_EQ(be.deliver.eventfd.port, 0u);
  EXPECT_EQ(be.deliver.eventfd.fd, efd->fd());
  // A callback backend cannot be the kernel's.
  auto cb = *f.table.bind_backend(0, std::function<void()>([] {}));
  EXPECT_EQ(commits.size(), 4u);

  EXPECT_EQ(f.close(ipi), 0);
  ASSERT_EQ(commits.size(), 5u);
  EXPECT_EQ(commits[4].size(), 3u);
  auto now = f.table.kernel_ports();
  ASSERT_EQ(now.size(), commits.back().size());
  EXPECT_EQ(std::memcmp(now.data(), commits.back().data(), now.size() * sizeof now[0]), 0);
}

TEST(EvtchnTable, FailedKernelCommitIsCountedNotFatal) {
  Fixture f(XenWidth::Bits64, 1, [](std::span<const kvm_xen_hvm_attr>) -> Result<void> {
    return make_error(EIO, "no");
  });
  uint32_t p = f.bind_ipi(0);
  EXPECT_EQ(f.status(p).status, static_cast<uint32_t>(EVTCHNSTAT_ipi));
  EXPECT_EQ(f.table.stats().kernel_commit_errors, 1u);
}

TEST(EvtchnTable, LostDeliveriesAreCounted) {
  Fixture f;
  uint32_t p = f.bind_ipi(0);
  f.pages.placed = false;
  EXPECT_EQ(f.send(p), 0);
  EXPECT_TRUE(f.injected.empty());
  EXPECT_EQ(f.table.stats().lost, 1u);
}

}  // namespace
}  // namespace evmm
