// What the virtio-blk tests share: a temporary image file, a driver that builds requests the way
// Linux's virtio_blk does (header, data, status in buffers of their own), and an engine the test
// completes by hand.
#pragma once

#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "base/eventfd.h"
#include "devices/virtio/blk/blk.h"
#include "testing/virtio_driver.h"

namespace evmm::virtio::blk_test {

// An image file of `bytes`, each byte (offset * 7) & 0xff, removed at the end. dir: where it lives.
class TempImage {
 public:
  explicit TempImage(uint64_t bytes, const std::string& dir = "/tmp") {
    path_ = dir + "/evmm-blk-XXXXXX";
    int fd = ::mkstemp(path_.data());
    EXPECT_GE(fd, 0) << dir;
    std::vector<uint8_t> data(bytes);
    for (uint64_t i = 0; i < bytes; ++i) data[i] = uint8_t(i * 7);
    EXPECT_EQ(::pwrite(fd, data.data(), data.size(), 0), ssize_t(bytes));
    ::close(fd);
  }
  ~TempImage() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }
  std::vector<uint8_t> read(uint64_t off, size_t n) const {
    std::vector<uint8_t> out(n);
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_EQ(::pread(fd, out.data(), n, off_t(off)), ssize_t(n));
    ::close(fd);
    return out;
  }
  static uint8_t pattern(uint64_t off) { return uint8_t(off * 7); }

 private:
  std::string path_;
};

// Holds every operation until the test completes it.
class ManualEngine final : public IoEngine {
 public:
  ManualEngine() : efd_(*EventFd::create()) {}
  BlkEngineKind kind() const override { return BlkEngineKind::Threads; }
  int event_fd() const override { return efd_.fd(); }
  void submit(IoOp op) override { ops.push_back(std::move(op)); }
  void kick() override {}
  void reap(std::vector<IoCompletion>& out) override {
    (void)efd_.consume();
    out.insert(out.end(), done.begin(), done.end());
    done.clear();
  }
  size_t in_flight() const override { return ops.size(); }
  // Completes the oldest held operation of `kind` with result.
  IoOp complete(IoOp::Kind kind, int result = 0) {
    for (auto it = ops.begin(); it != ops.end(); ++it) {
      if (it->kind != kind) continue;
      IoOp op = std::move(*it);
      ops.erase(it);
      done.push_back({op.tag, result});
      (void)efd_.signal();
      return op;
    }
    ADD_FAILURE() << "no operation of that kind is held";
    return {};
  }
  size_t held(IoOp::Kind kind) const {
    size_t n = 0;
    for (const auto& op : ops) n += op.kind == kind;
    return n;
  }

  std::deque<IoOp> ops;
  std::vector<IoCompletion> done;

 private:
  EventFd efd_;
};

constexpr uint64_t kHeaders = 0x200000;  // request i's header at kHeaders + 16 i
constexpr uint64_t kStatus = 0x280000;   // request i's status byte at kStatus + i
constexpr uint64_t kData = 0x300000;     // data buffers from here
constexpr uint8_t kUnset = 0xee;         // a status byte the device has not written

class BlkDriver {
 public:
  explicit BlkDriver(std::shared_ptr<BlkDevice> dev) : device(dev), d(std::move(dev)) {}

  uint32_t init(uint64_t features = (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_DISCARD) |
                                    (1ull << VIRTIO_BLK_F_WRITE_ZEROES)) {
    return d.init(features & device->features(), 1);
  }

  // A request: header, then data buffers, then the status; returns the request's index.
  int submit(uint32_t type, uint64_t sector, const std::vector<testing::Buf>& data) {
    int i = next_++;
    virtio_blk_outhdr h{type, 0, sector};
    EXPECT_TRUE(d.mem.write_obj(GuestAddress(kHeaders + 16ull * i), h));
    EXPECT_TRUE(d.mem.write_obj<uint8_t>(GuestAddress(kStatus + i), kUnset));
    std::vector<testing::Buf> bufs{{kHeaders + 16ull * i, 16, false}};
    bufs.insert(bufs.end(), data.begin(), data.end());
    bufs.push_back({kStatus + uint64_t(i), 1, true});
    d.submit(0, bufs);
    return i;
  }
  // A raw chain, for malformed requests; the header (if any) is the test's to write.
  int submit_raw(const std::vector<testing::Buf>& bufs) {
    int i = next_++;
    d.submit(0, bufs);
    return i;
  }
  // Notifies, then runs the loop until n used entries in all are there (or about 5 s passed).
  void run_until_used(uint16_t n) {
    d.notify(0);
    for (int k = 0; k < 500 && d.used_idx(0) < n; ++k) (void)d.loop->run_once(10);
  }
  uint8_t status(int i) { return *d.mem.read_obj<uint8_t>(GuestAddress(kStatus + i)); }
  // One request, waited for; its status.
  uint8_t request(uint32_t type, uint64_t sector, const std::vector<testing::Buf>& data) {
    int i = submit(type, sector, data);
    run_until_used(uint16_t(i + 1));
    return status(i);
  }
  std::vector<uint8_t> guest(uint64_t addr, size_t n) {
    std::vector<uint8_t> out(n);
    EXPECT_TRUE(d.mem.read(GuestAddress(addr), out));
    return out;
  }
  const BlkMetrics& metrics() const { return device->metrics(); }

  std::shared_ptr<BlkDevice> device;
  testing::VirtioTestDriver d;

 private:
  int next_ = 0;
};

}  // namespace evmm::virtio::blk_test
