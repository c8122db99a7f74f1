// virtio-net's data path against the raw backend: 1514-byte frames through the device (a host-side
// driver's rings, the walker, parse_tx, one writev; or read, copy into the guest's buffers, the used
// ring) beside the same frames written and read on a bare Unix datagram socketpair. The ratio is
// the device's cost; both include the peer's recv or send.
#include <benchmark/benchmark.h>
#include <sys/socket.h>

#include <algorithm>
#include <vector>

#include "devices/virtio/net/net.h"
#include "testing/virtio_driver.h"

namespace {

using namespace evmm;
using virtio::NetDevice;
constexpr size_t kFrame = 1514;
constexpr int kBatch = 8;  // chains per notification (half the test driver's queue)

struct Rig {
  Rig() {
    int sv[2];
    (void)::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv);
    peer = UniqueFd(sv[1]);
    dev = NetDevice::create(std::move(*virtio::NetBackend::adopt(UniqueFd(sv[0]), virtio::NetBackend::Kind::Socket)),
                            virtio::derived_mac(0));
    drv = std::make_unique<testing::VirtioTestDriver>(dev);
    drv->init((1ull << VIRTIO_NET_F_MRG_RXBUF) | (1ull << VIRTIO_RING_F_EVENT_IDX), 2);
    std::vector<uint8_t> f(NetDevice::kHeaderLen + kFrame, 0x5a);
    std::fill_n(f.begin(), NetDevice::kHeaderLen, 0);  // a header asking for no offload
    for (int i = 0; i < kBatch; ++i) (void)drv->mem.write(GuestAddress(0x200000 + 0x1000 * uint64_t(i)), f);
  }
  UniqueFd peer;
  std::shared_ptr<NetDevice> dev;
  std::unique_ptr<testing::VirtioTestDriver> drv;
};

void BM_DeviceTransmit(benchmark::State& state) {
  Rig r;
  std::vector<uint8_t> buf(2048);
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i)
      r.drv->submit(1, {{0x200000 + 0x1000 * uint64_t(i), uint32_t(NetDevice::kHeaderLen + kFrame), false}});
    r.drv->notify(1);
    for (int i = 0; i < kBatch; ++i) benchmark::DoNotOptimize(::recv(r.peer.get(), buf.data(), buf.size(), 0));
    while (r.drv->next_used(1)) {
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void BM_DeviceReceive(benchmark::State& state) {
  Rig r;
  std::vector<uint8_t> frame(kFrame, 0xa5);
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) (void)::send(r.peer.get(), frame.data(), frame.size(), 0);
    for (int i = 0; i < kBatch; ++i) r.drv->submit(0, {{0x200000 + 0x1000 * uint64_t(i), 2048, true}});
    r.drv->notify(0);
    while (r.drv->next_used(0)) {
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

// The baseline: the same frames over a bare socketpair, no device.
void BM_RawSocketpair(benchmark::State& state) {
  int sv[2];
  (void)::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv);
  UniqueFd a(sv[0]), b(sv[1]);
  std::vector<uint8_t> frame(kFrame, 0x5a), buf(2048);
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) benchmark::DoNotOptimize(::send(a.get(), frame.data(), frame.size(), 0));
    for (int i = 0; i < kBatch; ++i) benchmark::DoNotOptimize(::recv(b.get(), buf.data(), buf.size(), 0));
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

BENCHMARK(BM_RawSocketpair);
BENCHMARK(BM_DeviceTransmit);
BENCHMARK(BM_DeviceReceive);

}  // namespace

BENCHMARK_MAIN();
