#include "xen/evtchn_2l.h"

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <thread>

#include "testing/evtchn_test_pages.h"

namespace evmm {
namespace {

using testing::BufferPages;

// Offsets computed by hand from the headers' declarations, then checked against offsetof.
TEST(XenAbi, Layout64MatchesXenH) {
  const auto& l = evtchn_2l_layout(XenWidth::Bits64);
  // 32 vcpu_info of 64 bytes come first; then 64 pending words of 8 bytes, then the mask words.
  EXPECT_EQ(l.pending_offset, 2048u);
  EXPECT_EQ(l.mask_offset, 2048u + 64 * 8);
  EXPECT_EQ(l.vcpu_info_size, 64u);
  EXPECT_EQ(l.upcall_pending_offset, 0u);
  EXPECT_EQ(l.pending_sel_offset, 8u);  // after the two bytes, aligned for a 64-bit word
  EXPECT_EQ(l.word_bits, 64u);
  EXPECT_EQ(l.max_ports, 4096u);
  EXPECT_EQ(l.pending_offset, offsetof(shared_info, evtchn_pending));
  EXPECT_EQ(l.mask_offset, offsetof(shared_info, evtchn_mask));
  EXPECT_EQ(l.pending_sel_offset, offsetof(vcpu_info, evtchn_pending_sel));
  EXPECT_EQ(l.max_ports, EVTCHN_2L_NR_CHANNELS);
}

TEST(XenAbi, Layout32MatchesForeignHeader) {
  const auto& l = evtchn_2l_layout(XenWidth::Bits32);
  EXPECT_EQ(l.pending_offset, 2048u);
  EXPECT_EQ(l.mask_offset, 2048u + 32 * 4);
  EXPECT_EQ(l.vcpu_info_size, 64u);
  EXPECT_EQ(l.pending_sel_offset, 4u);  // a 32-bit word after the two bytes
  EXPECT_EQ(l.word_bits, 32u);
  EXPECT_EQ(l.max_ports, 1024u);
  EXPECT_EQ(l.pending_offset, offsetof(shared_info_x86_32, evtchn_pending));
  EXPECT_EQ(l.mask_offset, offsetof(shared_info_x86_32, evtchn_mask));
  EXPECT_EQ(l.pending_sel_offset, offsetof(vcpu_info_x86_32, evtchn_pending_sel));
  EXPECT_EQ(l.upcall_pending_offset, offsetof(vcpu_info_x86_32, evtchn_upcall_pending));
}

TEST(Evtchn2l, Port65Is64BitWord1Bit1) {
  BufferPages pages(XenWidth::Bits64);
  Evtchn2l bits(XenWidth::Bits64, pages);
  EXPECT_EQ(bits.set_pending(65, 0), Delivery::Upcall);
  EXPECT_EQ(pages.si64()->evtchn_pending[0], 0u);
  EXPECT_EQ(pages.si64()->evtchn_pending[1], 0b10u);
  EXPECT_EQ(pages.si64()->vcpu_info[0].evtchn_pending_sel, 0b10u);
  EXPECT_EQ(pages.si64()->vcpu_info[0].evtchn_upcall_pending, 1u);
  // The same, as raw bytes: word 1 starts 8 bytes into the array, little-endian.
  EXPECT_EQ(pages.byte(2048 + 8), 0x02);
  EXPECT_EQ(pages.byte(8), 0x02);  // vcpu_info[0].evtchn_pending_sel
  EXPECT_EQ(pages.byte(0), 0x01);  // vcpu_info[0].evtchn_upcall_pending
  EXPECT_TRUE(bits.is_pending(65));
  EXPECT_FALSE(bits.is_pending(64));
}

TEST(Evtchn2l, Port33Is32BitWord1Bit1) {
  BufferPages pages(XenWidth::Bits32);
  Evtchn2l bits(XenWidth::Bits32, pages);
  EXPECT_EQ(bits.set_pending(33, 1), Delivery::Upcall);
  EXPECT_EQ(pages.si32()->evtchn_pending[0], 0u);
  EXPECT_EQ(pages.si32()->evtchn_pending[1], 0b10u);
  EXPECT_EQ(pages.si32()->vcpu_info[1].evtchn_pending_sel, 0b10u);
  EXPECT_EQ(pages.si32()->vcpu_info[1].evtchn_upcall_pending, 1u);
  EXPECT_EQ(pages.si32()->vcpu_info[0].evtchn_upcall_pending, 0u);
  EXPECT_EQ(pages.byte(2048 + 4), 0x02);  // word 1 is 4 bytes in: a 64-bit layout would put 33 in word 0
  EXPECT_EQ(pages.byte(64 + 4), 0x02);    // vcpu_info[1].evtchn_pending_sel at offset 4
  EXPECT_EQ(pages.byte(64), 0x01);
  // Port 1023 is the last: word 31, bit 31.
  EXPECT_EQ(bits.set_pending(1023, 1), Delivery::None);  // upcall already pending
  EXPECT_EQ(pages.si32()->evtchn_pending[31], 0x80000000u);
  EXPECT_EQ(pages.si32()->vcpu_info[1].evtchn_pending_sel, 0x80000002u);
  EXPECT_EQ(bits.set_pending(1024, 1), Delivery::Lost);
}

TEST(Evtchn2l, SelectorAndUpcallOnlyOnNewEdges) {
  BufferPages pages(XenWidth::Bits64);
  Evtchn2l bits(XenWidth::Bits64, pages);
  auto* vi = &pages.si64()->vcpu_info[0];
  EXPECT_EQ(bits.set_pending(1, 0), Delivery::Upcall);
  EXPECT_EQ(bits.set_pending(2, 0), Delivery::None);  // same word: selector already set
  EXPECT_EQ(pages.si64()->evtchn_pending[0], 0b110u);
  // The guest takes the upcall flag but has not scanned word 0 yet: no new upcall for it.
  vi->evtchn_upcall_pending = 0;
  EXPECT_EQ(bits.set_pending(3, 0), Delivery::None);
  EXPECT_EQ(vi->evtchn_upcall_pending, 0u);
  // A port in another word sets its selector bit and flags the vCPU again.
  EXPECT_EQ(bits.set_pending(130, 0), Delivery::Upcall);
  EXPECT_EQ(vi->evtchn_pending_sel, 0b101u);
  // Selector set but upcall still flagged: nothing to inject.
  vi->evtchn_pending_sel = 0;
  EXPECT_EQ(bits.set_pending(200, 0), Delivery::None);
  EXPECT_EQ(vi->evtchn_pending_sel, 0b1000u);
}

TEST(Evtchn2l, DoubleSendSetsOnceAndUpcallsOnce) {
  BufferPages pages(XenWidth::Bits64);
  Evtchn2l bits(XenWidth::Bits64, pages);
  auto* vi = &pages.si64()->vcpu_info[0];
  EXPECT_EQ(bits.set_pending(7, 0), Delivery::Upcall);
  // The guest clears its selector and flag, but not the port: a second send is no new edge.
  vi->evtchn_pending_sel = 0;
  vi->evtchn_upcall_pending = 0;
  EXPECT_EQ(bits.set_pending(7, 0), Delivery::None);
  EXPECT_EQ(vi->evtchn_pending_sel, 0u);
  EXPECT_EQ(vi->evtchn_upcall_pending, 0u);
}

TEST(Evtchn2l, MaskedPortThenUnmaskReraises) {
  for (XenWidth w : {XenWidth::Bits64, XenWidth::Bits32}) {
    BufferPages pages(w);
    Evtchn2l bits(w, pages);
    const auto& l = bits.layout();
    uint32_t port = l.word_bits + 5;  // word 1
    // The guest masks the port itself, in its mask word.
    uint8_t* si = pages.raw();
    si[l.mask_offset + port / 8] |= 1 << (port % 8);
    EXPECT_TRUE(bits.is_masked(port));
    EXPECT_EQ(bits.set_pending(port, 0), Delivery::None);
    EXPECT_TRUE(bits.is_pending(port));
    EXPECT_EQ(si[l.pending_sel_offset], 0);
    EXPECT_EQ(si[l.upcall_pending_offset], 0);
    EXPECT_EQ(bits.unmask(port, 0), Delivery::Upcall);
    EXPECT_FALSE(bits.is_masked(port));
    EXPECT_EQ(si[l.pending_sel_offset], 0b10);
    EXPECT_EQ(si[l.upcall_pending_offset], 1);
  }
}

TEST(Evtchn2l, UnmaskOnlyActsOnAMaskedPendingPort) {
  BufferPages pages(XenWidth::Bits64);
  Evtchn2l bits(XenWidth::Bits64, pages);
  auto* si = pages.si64();
  // Not pending: the mask goes, nothing else.
  si->evtchn_mask[0] = 1u << 4;
  EXPECT_EQ(bits.unmask(4, 0), Delivery::None);
  EXPECT_EQ(si->evtchn_mask[0], 0u);
  EXPECT_EQ(si->vcpu_info[0].evtchn_pending_sel, 0u);
  // Pending but not masked (the guest cleared the mask itself): Xen's test_and_clear_bit finds no
  // mask, so there is no re-raise.
  si->evtchn_pending[0] = 1u << 4;
  EXPECT_EQ(bits.unmask(4, 0), Delivery::None);
  EXPECT_EQ(si->vcpu_info[0].evtchn_upcall_pending, 0u);
}

TEST(Evtchn2l, MissingOrMisplacedPagesLoseTheEvent) {
  BufferPages pages(XenWidth::Bits64);
  Evtchn2l bits(XenWidth::Bits64, pages);
  pages.placed = false;
  EXPECT_EQ(bits.set_pending(1, 0), Delivery::Lost);
  EXPECT_FALSE(bits.is_pending(1));
  pages.placed = true;
  EXPECT_EQ(bits.set_pending(1, 40), Delivery::Lost);  // no legacy slot for vCPU 40
  EXPECT_TRUE(bits.is_pending(1));                      // step 1 happened; the vCPU could not be told
  pages.clear();
  pages.vcpu_info_shift = 4;  // selector no longer 8-byte aligned
  EXPECT_EQ(bits.set_pending(2, 0), Delivery::Lost);
  EXPECT_EQ(pages.byte(4), 0);
  bits.clear_pending(2);
  EXPECT_FALSE(bits.is_pending(2));
}

// Spins for a few nanoseconds to a few hundred, so that racing threads meet at every offset.
void jitter(uint32_t& seed) {
  seed = seed * 1103515245 + 12345;
  uint32_t n = (seed >> 16) % 48;
  for (uint32_t i = 0; i < n; i++) asm volatile("" ::: "memory");
}

// A send on one thread against an unmask on this one, each round starting masked and quiet. Whatever
// the interleaving, once both are done the port is pending and unmasked, so its selector bit and the
// upcall flag must be set, and exactly one of the two must have asked for the injection. The threads
// meet by spinning rather than at a barrier, whose wake-up skew would keep them from overlapping.
TEST(EvtchnRaceConcurrent, SendAgainstUnmaskNeverLosesTheUpcall) {
  for (XenWidth w : {XenWidth::Bits64, XenWidth::Bits32}) {
    BufferPages pages(w);
    Evtchn2l bits(w, pages);
    const auto& l = bits.layout();
    const uint32_t port = l.word_bits * 3 + 7;
    uint8_t* si = pages.raw();
    constexpr int kRounds = 100000;
    std::atomic<int> round{0}, done{0}, sender_upcalls{0};
    std::thread sender([&] {
      uint32_t seed = 1;
      for (int i = 1; i <= kRounds; i++) {
        while (round.load() != i) {
        }
        jitter(seed);
        sender_upcalls = bits.set_pending(port, 0) == Delivery::Upcall;
        done.store(i);
      }
    });
    uint32_t seed = 2;
    int failures = 0;
    for (int i = 1; i <= kRounds; i++) {
      pages.clear();
      si[l.mask_offset + port / 8] = 1 << (port % 8);
      round.store(i);
      jitter(seed);
      int upcalls = bits.unmask(port, 0) == Delivery::Upcall;
      while (done.load() != i) {
      }
      upcalls += sender_upcalls;
      bool ok = bits.is_pending(port) && !bits.is_masked(port) && si[l.pending_sel_offset] == (1 << 3) &&
                si[l.upcall_pending_offset] == 1 && upcalls == 1;
      if (!ok) failures++;
    }
    sender.join();
    EXPECT_EQ(failures, 0) << "width " << l.word_bits;
  }
}

// Many raisers of the same port at once: one edge, one injection.
TEST(EvtchnRaceConcurrent, ConcurrentSendersInjectOnce) {
  BufferPages pages(XenWidth::Bits64);
  Evtchn2l bits(XenWidth::Bits64, pages);
  constexpr int kThreads = 4, kRounds = 5000;
  std::atomic<int> upcalls{0};
  std::barrier sync(kThreads + 1);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++)
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; i++) {
        sync.arrive_and_wait();
        if (bits.set_pending(100, 0) == Delivery::Upcall) upcalls++;
        sync.arrive_and_wait();
      }
    });
  int failures = 0;
  for (int i = 0; i < kRounds; i++) {
    pages.clear();
    upcalls = 0;
    sync.arrive_and_wait();
    sync.arrive_and_wait();
    if (upcalls != 1 || pages.si64()->vcpu_info[0].evtchn_upcall_pending != 1) failures++;
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
}

}  // namespace
}  // namespace evmm
