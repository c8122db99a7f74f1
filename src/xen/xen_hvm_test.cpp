#include "xen/xen_hvm.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <thread>

#include <xen/features.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>
#include <xen/memory.h>
#include <xen/sched.h>
#include <xen/vcpu.h>
#include <xen/version.h>

#include "boot/boot.h"
#include "event/event_loop.h"
#include "testing/xen_test_caller.h"

namespace evmm {
namespace {

using testing::FakeCaller;
using testing::kHole;
using testing::kReadOnly;
using testing::Recorder;

constexpr uint64_t kArg = 0x10000;      // where the tests put hypercall arguments
constexpr uint64_t kShared = 0x20000;   // shared_info
constexpr uint64_t kVcpuInfo = 0x21000; // a page for registered vcpu_info

struct Xen : ::testing::TestWithParam<XenWidth> {
  Xen() : mem(*GuestMemory::create_pc(16 << 20)), xen(testing::make_xen(mem, rec)) {}
  XenWidth width() const { return GetParam(); }
  FakeCaller caller(uint32_t vcpu = 0) { return FakeCaller(mem, vcpu, width()); }
  int64_t call(uint64_t nr, uint64_t a0 = 0, uint64_t a1 = 0, uint64_t a2 = 0, uint32_t vcpu = 0) {
    auto c = caller(vcpu);
    return xen->hypercall(c, {nr, {a0, a1, a2, 0, 0}});
  }
  template <typename T>
  void put(uint64_t gpa, const T& v) {
    ASSERT_TRUE(mem.write_obj(GuestAddress(gpa), v));
  }
  template <typename T>
  T get(uint64_t gpa) {
    return *mem.read_obj<T>(GuestAddress(gpa));
  }
  const Evtchn2lLayout& layout() const { return evtchn_2l_layout(width()); }

  // XENMEM_add_to_physmap with the struct laid out for the guest's width.
  int64_t add_to_physmap(uint32_t space, uint32_t idx, uint64_t gpa, domid_t dom = DOMID_SELF) {
    if (width() == XenWidth::Bits64) {
      put(kArg, xen_add_to_physmap{dom, 0, space, idx, gpa >> 12});
    } else {
      struct { uint16_t domid, size; uint32_t space, idx, gpfn; } m{dom, 0, space, idx, static_cast<uint32_t>(gpa >> 12)};
      put(kArg, m);
    }
    return call(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, kArg);
  }
  void map_shared_info(uint64_t gpa = kShared) { ASSERT_EQ(add_to_physmap(XENMAPSPACE_shared_info, 0, gpa), 0); }
  void set_callback_vector(uint8_t vector) {
    put(kArg, xen_hvm_param{.domid = DOMID_SELF, .pad = 0, .index = HVM_PARAM_CALLBACK_IRQ,
                             .value = (uint64_t{HVM_PARAM_CALLBACK_TYPE_VECTOR} << 56) | vector});
    ASSERT_EQ(call(__HYPERVISOR_hvm_op, HVMOP_set_param, kArg), 0);
  }
  // Read as the guest does, atomically: the timer tests set bits from the event loop's thread.
  bool pending(uint32_t port) {
    auto byte = mem.slice(GuestAddress(kShared + layout().pending_offset + port / 8), 1)->load<uint8_t>(0, std::memory_order_seq_cst);
    return *byte & (1u << (port % 8));
  }

  // The NUL-terminated string at gpa, within n bytes.
  std::string string_at(uint64_t gpa, size_t n) {
    std::string b(n, '\0');
    // SAFETY: b holds n chars, which the read fills as bytes.
    EXPECT_TRUE(mem.read(GuestAddress(gpa), std::span(reinterpret_cast<uint8_t*>(b.data()), n)));
    return b.substr(0, b.find('\0'));
  }

  GuestMemory mem;
  Recorder rec;
  std::unique_ptr<XenHvm> xen;
};
// The suite name ends in Concurrent: ctest labels its tests "concurrency" (src/CMakeLists.txt).
using XenConcurrent = Xen;

INSTANTIATE_TEST_SUITE_P(Width, XenConcurrent, ::testing::Values(XenWidth::Bits64, XenWidth::Bits32),
                         [](const auto& i) { return i.param == XenWidth::Bits64 ? "Bits64" : "Bits32"; });

TEST(XenTime, ScaleTurnsOneSecondOfTicksIntoOneSecond) {
  for (uint64_t khz : {100'000ull, 1'000'000ull, 2'100'000ull, 2'999'999ull, 4'000'000ull, 10'000'000ull}) {
    auto s = xen_time_scale(khz);
    EXPECT_GE(s.mul, 1u << 31) << khz;  // as precise as 32 bits allow
    uint64_t ns = xen_scale_delta(khz * 1000, s);
    EXPECT_NEAR(static_cast<double>(ns), 1e9, 2.0) << khz << " kHz: mul " << s.mul << " shift " << int(s.shift);
  }
}

// One page for every mode: no REX prefix, whose 0x48 a compatibility-mode segment decodes as dec.
TEST(XenHypercallAbi, StubsWriteThePortWithBytesThatMeanTheSameInEveryMode) {
  std::array<uint8_t, kXenPageSize> page;
  write_hypercall_page(page);
  const uint8_t stub34[] = {0xb8, 34, 0, 0, 0, 0xe7, kXenHypercallPort, 0xc3, 0xcc};
  EXPECT_EQ(0, std::memcmp(page.data() + 34 * 32, stub34, sizeof stub34));
  const uint8_t stub127[] = {0xb8, 127, 0, 0, 0, 0xe7, kXenHypercallPort, 0xc3, 0xcc};
  EXPECT_EQ(0, std::memcmp(page.data() + 127 * 32, stub127, sizeof stub127));
  size_t other = 0;  // stubs whose opcodes are not mov-imm32, out-imm8, ret
  for (size_t nr = 0; nr < kXenPageSize / 32; nr++) {
    const uint8_t* st = page.data() + nr * 32;
    other += st[0] != 0xb8 || st[1] != nr || st[5] != 0xe7 || st[6] != kXenHypercallPort || st[7] != 0xc3;
  }
  EXPECT_EQ(other, 0u);
}

TEST(XenHypercallAbi, ResultsAreSignExtendedForA64BitCaller) {
  EXPECT_EQ(hypercall_rax(-22, XenWidth::Bits64), uint64_t(-22));
  EXPECT_EQ(hypercall_rax(-22, XenWidth::Bits32), 0xffffffeau);
  EXPECT_EQ(hypercall_rax(0x7fffffff, XenWidth::Bits64), 0x7fffffffu);
  EXPECT_EQ(hypercall_rax(5, XenWidth::Bits32), 5u);
}

TEST(XenHypercallAbi, ArgumentRegistersPerWidth) {
  kvm_regs r{};
  r.rax = 0x1'0000'0011;
  r.rdi = 1, r.rsi = 2, r.rdx = 3, r.r10 = 4, r.r8 = 5;
  r.rbx = 0xf'0000'0006, r.rcx = 7, r.rdx = 3, r.rsi = 2, r.rdi = 1;
  auto a64 = decode_hypercall(r, XenWidth::Bits64);
  EXPECT_EQ(a64.nr, 0x1'0000'0011u);
  EXPECT_EQ(a64.a, (std::array<uint64_t, 5>{1, 2, 3, 4, 5}));
  auto a32 = decode_hypercall(r, XenWidth::Bits32);
  EXPECT_EQ(a32.nr, 0x11u);
  EXPECT_EQ(a32.a, (std::array<uint64_t, 5>{6, 7, 3, 2, 1}));
}

TEST(XenGuestVa, CopiesAcrossPagesAndFaultsOnTheFirstBadPage) {
  auto mem = *GuestMemory::create_pc(16 << 20);
  FakeCaller c(mem, 0, XenWidth::Bits64);
  std::vector<uint8_t> in(100, 0x5a), out(100);
  EXPECT_EQ(c.va().write(0x1000 - 50, in), 0);
  EXPECT_EQ(c.va().read(0x1000 - 50, out), 0);
  EXPECT_EQ(in, out);
  EXPECT_EQ(c.va().read(kHole - 50, out), -XEN_EFAULT);
  EXPECT_EQ(c.va().write(kReadOnly + 10, in), -XEN_EFAULT);
  EXPECT_EQ(c.va().read(kReadOnly + 10, out), 0);
  EXPECT_EQ(c.va().read((16 << 20) - 50, out), -XEN_EFAULT);  // runs off the end of RAM
  std::vector<size_t> pieces;
  EXPECT_EQ(c.va().for_each_piece(0x1ff0, 0x2020, [&](auto p) { pieces.push_back(p.size()); return true; }), 0);
  EXPECT_EQ(pieces, (std::vector<size_t>{0x10, 0x1000, 0x1000, 0x10}));
}

TEST_P(XenConcurrent, VersionAndItsSubOps) {
  EXPECT_EQ(call(__HYPERVISOR_xen_version, XENVER_version), (4 << 16) | 17);
  EXPECT_EQ(call(__HYPERVISOR_xen_version, XENVER_extraversion, kArg), 0);
  EXPECT_STREQ(string_at(kArg, 16).c_str(), ".0");
  put(kArg, xen_feature_info{0, 0});
  EXPECT_EQ(call(__HYPERVISOR_xen_version, XENVER_get_features, kArg), 0);
  EXPECT_EQ(get<xen_feature_info>(kArg).submap, (1u << XENFEAT_hvm_callback_vector) | (1u << XENFEAT_hvm_safe_pvclock));
  put(kArg, xen_feature_info{XENFEAT_NR_SUBMAPS, 0});
  EXPECT_EQ(call(__HYPERVISOR_xen_version, XENVER_get_features, kArg), -XEN_EINVAL);
  EXPECT_EQ(call(__HYPERVISOR_xen_version, XENVER_capabilities, kArg), 0);
  EXPECT_STREQ(string_at(kArg, 64).c_str(),
               "hvm-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p");
  EXPECT_EQ(call(__HYPERVISOR_xen_version, XENVER_changeset, kArg), 0);
  EXPECT_STREQ(string_at(kArg, 64).c_str(), "evmm");
  EXPECT_EQ(call(__HYPERVISOR_xen_version, XENVER_compile_info, kArg), 0);
  EXPECT_STREQ(get<xen_compile_info_t>(kArg).compiler, "evmm");
  EXPECT_EQ(call(__HYPERVISOR_xen_version, XENVER_guest_handle, kArg), 0);
  EXPECT_EQ(call(__HYPERVISOR_xen_version, XENVER_pagesize), 4096);
  EXPECT_EQ(call(__HYPERVISOR_xen_version, XENVER_commandline, kArg), -XEN_EPERM);
  EXPECT_EQ(call(__HYPERVISOR_xen_version, XENVER_extraversion, kHole), -XEN_EFAULT);
  EXPECT_EQ(xen->stats().faults, 1u);
  EXPECT_EQ(call(__HYPERVISOR_xen_version, 99), -XEN_ENOSYS);
  EXPECT_EQ(call(__HYPERVISOR_grant_table_op, 0 /* GNTTABOP_map_grant_ref */, kArg, 1), -XEN_ENOSYS);
  EXPECT_EQ(call(__HYPERVISOR_mmu_update), -XEN_ENOSYS);
  EXPECT_EQ(xen->stats().unknown_hypercalls, 3u);
}

TEST_P(XenConcurrent, ConsoleWriteIsStreamedAndStopsAtAFault) {
  const char text[] = "across a page boundary\n";
  ASSERT_TRUE(mem.write(GuestAddress(0x2000 - 10), std::span(reinterpret_cast<const uint8_t*>(text), sizeof text - 1)));
  EXPECT_EQ(call(__HYPERVISOR_console_io, CONSOLEIO_write, sizeof text - 1, 0x2000 - 10), 0);
  EXPECT_EQ(rec.console, text);
  // 4 GiB - 1 bytes from 16 bytes before the hole: 16 bytes go out, then -EFAULT, with no
  // allocation the size of the length.
  rec.console.clear();
  ASSERT_TRUE(mem.fill(GuestAddress(kHole - 16), 'x', 16));
  EXPECT_EQ(call(__HYPERVISOR_console_io, CONSOLEIO_write, 0xffffffff, kHole - 16), -XEN_EFAULT);
  EXPECT_EQ(rec.console, std::string(16, 'x'));
  EXPECT_EQ(xen->stats().console_bytes, sizeof text - 1 + 16);
  EXPECT_EQ(call(__HYPERVISOR_console_io, CONSOLEIO_read, 10, kArg), 0);
}

TEST_P(XenConcurrent, SharedInfoVcpuInfoAndTheUpcall) {
  map_shared_info();
  // Before an upcall vector exists an event stays pending in the page, and nothing is injected.
  put(kArg, evtchn_bind_ipi{0, 0});
  ASSERT_EQ(call(__HYPERVISOR_event_channel_op, EVTCHNOP_bind_ipi, kArg), 0);
  const uint32_t port = get<evtchn_bind_ipi>(kArg).port;
  EXPECT_EQ(port, 1u);
  put(kArg, evtchn_send{port});
  EXPECT_EQ(call(__HYPERVISOR_event_channel_op, EVTCHNOP_send, kArg), 0);
  EXPECT_TRUE(pending(port));
  EXPECT_TRUE(rec.take_upcalls().empty());
  EXPECT_EQ(xen->stats().lost_upcalls, 1u);

  // Choosing a vector re-asserts the upcall the event flagged before there was one.
  set_callback_vector(0xf3);
  EXPECT_EQ(rec.take_upcalls(), (std::vector<std::pair<uint32_t, uint8_t>>{{0, 0xf3}}));
  // Registering vcpu_info copies the legacy slot and flags an upcall so the guest rescans.
  put(kArg, vcpu_register_vcpu_info{kVcpuInfo >> 12, 64, 0});
  EXPECT_EQ(call(__HYPERVISOR_vcpu_op, VCPUOP_register_vcpu_info, 0, kArg), 0);
  EXPECT_EQ(get<uint8_t>(kVcpuInfo + 64 + layout().upcall_pending_offset), 1);
  EXPECT_EQ(rec.take_upcalls(), (std::vector<std::pair<uint32_t, uint8_t>>{{0, 0xf3}}));
  // Its time info is consistent (even version, the scale for 2 GHz).
  auto t = get<vcpu_time_info>(kVcpuInfo + 64 + (width() == XenWidth::Bits64 ? offsetof(vcpu_info, time)
                                                                             : offsetof(vcpu_info_x86_32, time)));
  EXPECT_EQ(t.version % 2, 0u);
  EXPECT_GT(t.version, 0u);
  EXPECT_EQ(t.tsc_to_system_mul, xen_time_scale(2'000'000).mul);
  EXPECT_EQ(t.flags, XEN_PVCLOCK_TSC_STABLE_BIT);
  // Once only, within a page, aligned, for a vCPU that exists.
  EXPECT_EQ(call(__HYPERVISOR_vcpu_op, VCPUOP_register_vcpu_info, 0, kArg), -XEN_EINVAL);
  put(kArg, vcpu_register_vcpu_info{kVcpuInfo >> 12, 4090, 0});
  EXPECT_EQ(call(__HYPERVISOR_vcpu_op, VCPUOP_register_vcpu_info, 1, kArg), -XEN_EINVAL);
  put(kArg, vcpu_register_vcpu_info{kVcpuInfo >> 12, 130, 0});
  EXPECT_EQ(call(__HYPERVISOR_vcpu_op, VCPUOP_register_vcpu_info, 1, kArg), -XEN_EINVAL);
  EXPECT_EQ(call(__HYPERVISOR_vcpu_op, VCPUOP_register_vcpu_info, 2, kArg), -XEN_ENOENT);

  // The guest clears the flag and takes the selector, as its handler does; a new event flags it
  // and injects again.
  put<uint8_t>(kVcpuInfo + 64 + layout().upcall_pending_offset, 0);
  put<uint64_t>(kVcpuInfo + 64 + layout().pending_sel_offset, 0);
  put(kArg, evtchn_bind_ipi{0, 0});
  ASSERT_EQ(call(__HYPERVISOR_event_channel_op, EVTCHNOP_bind_ipi, kArg), 0);
  put(kArg, evtchn_send{get<evtchn_bind_ipi>(kArg).port});
  EXPECT_EQ(call(__HYPERVISOR_event_channel_op, EVTCHNOP_send, kArg), 0);
  EXPECT_EQ(rec.take_upcalls(), (std::vector<std::pair<uint32_t, uint8_t>>{{0, 0xf3}}));

  // A per-vCPU vector takes precedence over the domain's callback.
  put(kArg, xen_hvm_evtchn_upcall_vector{1, 0xe0});
  EXPECT_EQ(call(__HYPERVISOR_hvm_op, HVMOP_set_evtchn_upcall_vector, kArg), 0);
  put(kArg, evtchn_bind_ipi{1, 0});
  ASSERT_EQ(call(__HYPERVISOR_event_channel_op, EVTCHNOP_bind_ipi, kArg, 0, 1), 0);
  put(kArg, evtchn_send{get<evtchn_bind_ipi>(kArg).port});
  EXPECT_EQ(call(__HYPERVISOR_event_channel_op, EVTCHNOP_send, kArg), 0);
  EXPECT_EQ(rec.take_upcalls(), (std::vector<std::pair<uint32_t, uint8_t>>{{1, 0xe0}}));
  put(kArg, xen_hvm_evtchn_upcall_vector{1, 0x0f});
  EXPECT_EQ(call(__HYPERVISOR_hvm_op, HVMOP_set_evtchn_upcall_vector, kArg), -XEN_EINVAL);
  put(kArg, xen_hvm_evtchn_upcall_vector{9, 0xe0});
  EXPECT_EQ(call(__HYPERVISOR_hvm_op, HVMOP_set_evtchn_upcall_vector, kArg), -XEN_ENOENT);
}

TEST_P(XenConcurrent, MovingSharedInfoKeepsItsContents) {
  map_shared_info();
  put(kArg, evtchn_bind_ipi{0, 0});
  ASSERT_EQ(call(__HYPERVISOR_event_channel_op, EVTCHNOP_bind_ipi, kArg), 0);
  put(kArg, evtchn_send{1});
  ASSERT_EQ(call(__HYPERVISOR_event_channel_op, EVTCHNOP_send, kArg), 0);
  map_shared_info(0x30000);
  EXPECT_EQ(get<uint8_t>(0x30000 + layout().pending_offset) & 2, 2);
  // idx must be 0; the page must be RAM; only the guest's own domain.
  EXPECT_EQ(add_to_physmap(XENMAPSPACE_shared_info, 1, 0x30000), -XEN_EINVAL);
  EXPECT_EQ(add_to_physmap(XENMAPSPACE_shared_info, 0, 0xfee00000), -XEN_EINVAL);
  EXPECT_EQ(add_to_physmap(XENMAPSPACE_shared_info, 0, 0x30000, 3), -XEN_ESRCH);
}

TEST_P(XenConcurrent, GrantFramesArePlacedButGrantOpsAreNotThereYet) {
  ASSERT_TRUE(mem.fill(GuestAddress(0x40000), 0xaa, 4096));
  EXPECT_EQ(add_to_physmap(XENMAPSPACE_grant_table, 0, 0x40000), 0);
  EXPECT_EQ(get<uint64_t>(0x40000 + 128), 0u);  // a fresh frame: no grants
  EXPECT_EQ(add_to_physmap(XENMAPSPACE_grant_table, 4, 0x41000), -XEN_EINVAL);
  EXPECT_EQ(add_to_physmap(XENMAPSPACE_grant_table, XENMAPIDX_grant_table_status, 0x41000), -XEN_EINVAL);
  EXPECT_EQ(add_to_physmap(XENMAPSPACE_gmfn, 0, 0x41000), -XEN_EINVAL);
  EXPECT_EQ(call(__HYPERVISOR_grant_table_op, 2 /* GNTTABOP_setup_table */, kArg, 1), -XEN_ENOSYS);
}

TEST_P(XenConcurrent, HvmParamsAnswerAsADomainWithoutStoreOrConsole) {
  auto get_param = [&](uint32_t index) {
    put(kArg, xen_hvm_param{.domid = DOMID_SELF, .pad = 0, .index = index, .value = 0x1234});
    int64_t r = call(__HYPERVISOR_hvm_op, HVMOP_get_param, kArg);
    return std::pair{r, get<xen_hvm_param>(kArg).value};
  };
  EXPECT_EQ(get_param(HVM_PARAM_STORE_PFN), std::pair(int64_t{0}, uint64_t{0}));
  EXPECT_EQ(get_param(HVM_PARAM_STORE_EVTCHN), std::pair(int64_t{0}, uint64_t{0}));
  EXPECT_EQ(get_param(HVM_PARAM_CONSOLE_PFN).first, -XEN_ENOENT);
  EXPECT_EQ(get_param(HVM_PARAM_CONSOLE_EVTCHN).first, -XEN_ENOENT);
  EXPECT_EQ(get_param(HVM_NR_PARAMS).first, -XEN_EINVAL);
  set_callback_vector(0xf3);
  EXPECT_EQ(get_param(HVM_PARAM_CALLBACK_IRQ), std::pair(int64_t{0}, (uint64_t{2} << 56) | 0xf3));
  auto set_param = [&](uint32_t index, uint64_t value, domid_t dom = DOMID_SELF) {
    put(kArg, xen_hvm_param{.domid = dom, .pad = 0, .index = index, .value = value});
    return call(__HYPERVISOR_hvm_op, HVMOP_set_param, kArg);
  };
  EXPECT_EQ(set_param(HVM_PARAM_STORE_PFN, 5), -XEN_EPERM);
  EXPECT_EQ(set_param(HVM_PARAM_CALLBACK_IRQ, (uint64_t{2} << 56) | 0x0e), -XEN_EINVAL);
  EXPECT_EQ(set_param(HVM_PARAM_CALLBACK_IRQ, 5), -XEN_EOPNOTSUPP);  // a GSI callback
  EXPECT_EQ(set_param(HVM_PARAM_CALLBACK_IRQ, 0), 0);
  EXPECT_EQ(set_param(HVM_PARAM_CALLBACK_IRQ, 0, 7), -XEN_ESRCH);
  EXPECT_EQ(call(__HYPERVISOR_hvm_op, HVMOP_pagetable_dying, kArg), -XEN_ENOSYS);
}

TEST_P(XenConcurrent, MemoryMapListsTheE820) {
  struct { uint32_t nr; uint32_t pad; uint64_t buf; } m64{8, 0, 0x11000};
  struct { uint32_t nr; uint32_t buf; } m32{8, 0x11000};
  if (width() == XenWidth::Bits64) {
    put(kArg, m64);
  } else {
    put(kArg, m32);
  }
  ASSERT_EQ(call(__HYPERVISOR_memory_op, XENMEM_memory_map, kArg), 0);
  auto map = build_e820(mem);
  ASSERT_EQ(get<uint32_t>(kArg), map.size());
  EXPECT_EQ(get<uint64_t>(0x11000), map[0].addr);
  EXPECT_EQ(get<uint64_t>(0x11000 + 8), map[0].size);
  EXPECT_EQ(get<uint32_t>(0x11000 + 16), map[0].type);
  EXPECT_EQ(call(__HYPERVISOR_memory_op, XENMEM_current_reservation + 0, kArg), -XEN_ESRCH);  // domid 8
  put<uint16_t>(kArg, DOMID_SELF);
  EXPECT_EQ(call(__HYPERVISOR_memory_op, XENMEM_maximum_reservation, kArg), int64_t(mem.ram_bytes() / 4096));
}

TEST_P(XenConcurrent, PollReturnsForAPendingPortAndAfterItsTimeout) {
  map_shared_info();
  put(kArg, evtchn_bind_ipi{0, 0});
  ASSERT_EQ(call(__HYPERVISOR_event_channel_op, EVTCHNOP_bind_ipi, kArg), 0);
  const uint32_t port = get<evtchn_bind_ipi>(kArg).port;
  put<uint32_t>(0x12000, port);
  auto poll = [&](uint32_t nr, uint64_t timeout) {
    if (width() == XenWidth::Bits64) put(kArg + 0x100, sched_poll{{reinterpret_cast<evtchn_port_t*>(0x12000)}, nr, timeout});
    else put(kArg + 0x100, std::array<uint32_t, 4>{0x12000, nr, static_cast<uint32_t>(timeout), static_cast<uint32_t>(timeout >> 32)});
    auto t0 = std::chrono::steady_clock::now();
    int64_t r = call(__HYPERVISOR_sched_op, SCHEDOP_poll, kArg + 0x100);
    return std::pair{r, std::chrono::steady_clock::now() - t0};
  };
  auto [r, took] = poll(1, xen->system_time_ns() + 20'000'000);
  EXPECT_EQ(r, 0);
  EXPECT_GE(took, std::chrono::milliseconds(19));
  // Another thread sends while vCPU 0 polls: the poll ends early.
  std::thread sender([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    evtchn_send s{port};
    EXPECT_EQ(xen->event_channels().send(s), 0);
  });
  std::tie(r, took) = poll(1, xen->system_time_ns() + 5'000'000'000);
  sender.join();
  EXPECT_EQ(r, 0);
  EXPECT_LT(took, std::chrono::seconds(2));
  std::tie(r, took) = poll(1, 0);  // already pending: at once
  EXPECT_EQ(r, 0);
  put<uint32_t>(0x12000, 4096);
  EXPECT_EQ(poll(1, 0).first, -XEN_EINVAL);
  EXPECT_EQ(poll(129, 0).first, -XEN_EINVAL);
}

TEST_P(XenConcurrent, ShutdownReasonsStopTheVm) {
  auto shutdown = [&](unsigned reason) {
    put(kArg, sched_shutdown{reason});
    return call(__HYPERVISOR_sched_op, SCHEDOP_shutdown, kArg);
  };
  EXPECT_EQ(shutdown(SHUTDOWN_poweroff), 0);
  EXPECT_EQ(shutdown(SHUTDOWN_reboot), 0);
  EXPECT_EQ(shutdown(SHUTDOWN_crash), 0);
  EXPECT_EQ(shutdown(SHUTDOWN_watchdog), 0);
  EXPECT_EQ(shutdown(SHUTDOWN_suspend), 0);
  EXPECT_EQ(shutdown(77), -XEN_EINVAL);
  std::vector<StopReason> reasons;
  for (auto& [r, s] : rec.stops) reasons.push_back(r);
  EXPECT_EQ(reasons, (std::vector<StopReason>{StopReason::PowerOff, StopReason::Reset, StopReason::Crash,
                                              StopReason::Crash, StopReason::Suspend}));
  EXPECT_EQ(call(__HYPERVISOR_sched_op, SCHEDOP_yield), 0);
  // SCHEDOP_block returns at once and leaves the vCPU to halt in KVM.
  auto c = caller();
  EXPECT_EQ(xen->hypercall(c, {__HYPERVISOR_sched_op, {SCHEDOP_block, 0, 0, 0, 0}}), 0);
  EXPECT_EQ(c.halts, 1);
  EXPECT_EQ(call(__HYPERVISOR_sched_op, SCHEDOP_remote_shutdown, kArg), -XEN_EPERM);
  EXPECT_EQ(call(__HYPERVISOR_sched_op, 42), -XEN_ENOSYS);
}

TEST_P(XenConcurrent, SingleshotTimerRaisesVirqTimer) {
  auto loop = *EventLoop::create();
  ASSERT_TRUE(loop->add(xen->timers()));
  ASSERT_TRUE(loop->start());
  map_shared_info();
  set_callback_vector(0xf3);
  put(kArg, evtchn_bind_virq{VIRQ_TIMER, 0, 0});
  ASSERT_EQ(call(__HYPERVISOR_event_channel_op, EVTCHNOP_bind_virq, kArg), 0);
  const uint32_t port = get<evtchn_bind_virq>(kArg).port;
  put(kArg, vcpu_set_singleshot_timer{xen->system_time_ns() + 5'000'000, 0});
  EXPECT_EQ(call(__HYPERVISOR_vcpu_op, VCPUOP_set_singleshot_timer, 0, kArg), 0);
  // The loop thread sets the port pending and then injects the upcall: wait for the upcall, the last.
  for (int i = 0; i < 200 && rec.upcall_count() == 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(pending(port));
  EXPECT_EQ(xen->stats().timer_fires, 1u);
  EXPECT_EQ(rec.take_upcalls(), (std::vector<std::pair<uint32_t, uint8_t>>{{0, 0xf3}}));
  // A deadline in the past with VCPU_SSHOTTMR_future is refused; another vCPU's timer too.
  put(kArg, vcpu_set_singleshot_timer{1, VCPU_SSHOTTMR_future});
  EXPECT_EQ(call(__HYPERVISOR_vcpu_op, VCPUOP_set_singleshot_timer, 0, kArg), -XEN_ETIME);
  EXPECT_EQ(call(__HYPERVISOR_vcpu_op, VCPUOP_set_singleshot_timer, 1, kArg), -XEN_EINVAL);
  // set_timer_op, then stopping it: nothing fires.
  EXPECT_EQ(call(__HYPERVISOR_set_timer_op, xen->system_time_ns() + 20'000'000), 0);
  EXPECT_EQ(call(__HYPERVISOR_vcpu_op, VCPUOP_stop_singleshot_timer, 0), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(40));
  EXPECT_EQ(xen->stats().timer_fires, 1u);
  loop->stop();
}

TEST_P(XenConcurrent, VcpuIsUpOnceItRuns) {
  EXPECT_EQ(call(__HYPERVISOR_vcpu_op, VCPUOP_is_up, 0), 1);
  EXPECT_EQ(call(__HYPERVISOR_vcpu_op, VCPUOP_is_up, 1), 0);  // vCPU 1 has not run anything yet
  EXPECT_EQ(call(__HYPERVISOR_sched_op, SCHEDOP_yield, 0, 0, 1), 0);
  EXPECT_EQ(call(__HYPERVISOR_vcpu_op, VCPUOP_is_up, 1), 1);
  EXPECT_EQ(call(__HYPERVISOR_vcpu_op, VCPUOP_is_up, 2), -XEN_ENOENT);
  EXPECT_EQ(call(__HYPERVISOR_vcpu_op, VCPUOP_stop_periodic_timer, 0), 0);
  EXPECT_EQ(call(__HYPERVISOR_vcpu_op, VCPUOP_get_runstate_info, 0, kArg), -XEN_ENOSYS);
}

TEST_P(XenConcurrent, HypercallPageMsr) {
  const uint32_t msr = 0x40000000;
  EXPECT_TRUE(xen->on_msr(0, width(), true, msr, 0x5000));
  EXPECT_EQ(get<uint8_t>(0x5000 + 17 * 32), 0xb8);
  EXPECT_EQ(get<uint8_t>(0x5000 + 17 * 32 + 1), 17);
  EXPECT_FALSE(xen->on_msr(0, width(), true, msr, 0x5001));  // page index 1 of 1
  EXPECT_FALSE(xen->on_msr(0, width(), true, msr, uint64_t{1} << 40));  // not RAM
  EXPECT_FALSE(xen->on_msr(0, width(), false, msr, 0));
  EXPECT_FALSE(xen->on_msr(0, width(), true, msr + 1, 0x5000));
  EXPECT_EQ(xen->stats().bad_msr_writes, 2u);
  // The page's width is latched: the port table follows it.
  EXPECT_EQ(xen->event_channels().max_ports(), width() == XenWidth::Bits64 ? 4096u : 1024u);
}

}  // namespace
}  // namespace evmm

namespace evmm {
namespace {

TEST(XenKernelPath, ChosenOnlyWhenTheKernelHasEveryPieceItNeeds) {
  EXPECT_FALSE(XenHvm::kernel_support_usable(0));   // KVM_CAP_XEN_HVM absent, as on the dev hosts
  EXPECT_FALSE(XenHvm::kernel_support_usable(-1));  // an error from KVM_CHECK_EXTENSION
  EXPECT_FALSE(XenHvm::kernel_support_usable(KVM_XEN_HVM_CONFIG_HYPERCALL_MSR | KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL));
  EXPECT_FALSE(XenHvm::kernel_support_usable(KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL | KVM_XEN_HVM_CONFIG_SHARED_INFO));
  EXPECT_TRUE(XenHvm::kernel_support_usable(KVM_XEN_HVM_CONFIG_HYPERCALL_MSR | KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL |
                                            KVM_XEN_HVM_CONFIG_SHARED_INFO | KVM_XEN_HVM_CONFIG_EVTCHN_SEND));
}

}  // namespace
}  // namespace evmm
