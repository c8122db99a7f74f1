// fw_cfg (devices/fw_cfg.h) with the items evmm's platform gives it, driven by a guest's selector,
// data and DMA accesses. Input: one byte whose bit 0 turns DMA on, then device_ops.h operations at
// port 0x510. The guest's memory is 64 KiB from address 0 and starts zeroed. Extra op: write
// (arg & 15) + 1 bytes at the 2-byte address that follows; clock op (fw_cfg has no clock): write a
// DMA descriptor (control 4 bytes, length 2, target 2, each LE in the input) at address value & 0xfff0.
// Invariants from fw_cfg.h: the data port returns the selected item byte by byte, then zeros, and
// zeros for an unknown key; a 2-byte read returns all-ones; with DMA the registers read "QEMU CFG";
// a DMA transfer selects, skips or reads as its descriptor says (a read copies the item from the
// current offset and zero-fills past its end), then leaves 0 in the control word, or the error bit
// for a write or a target outside guest memory.
#include <array>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "bus/io_bus.h"
#include "device_ops.h"
#include "devices/fw_cfg.h"
#include "fuzz_memory.h"
#include "memory/guest_memory.h"
#include "memory/layout.h"

using namespace evmm;

namespace {

constexpr uint64_t kMemBytes = 64 * 1024;
constexpr char kDmaSignature[] = "QEMU CFG";

std::vector<uint8_t> le_bytes(uint64_t v, size_t n) {
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
  return out;
}

void put_be(std::vector<uint8_t>& out, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * (n - 1 - i))));
}

using Items = std::map<uint16_t, std::vector<uint8_t>>;

// What a guest reads for key: nullopt for the file directory, which is not modelled.
std::optional<std::vector<uint8_t>> item(const Items& items, uint16_t key) {
  if (key == fw_cfg::kFileDir) return std::nullopt;
  auto it = items.find(key);
  return it == items.end() ? std::vector<uint8_t>{} : it->second;
}

// What a DMA transfer should leave behind (fw_cfg.rst, "DMA interface").
struct Transfer {
  std::array<uint8_t, 4> control{};  // written back big-endian: 0, or the error bit
  uint64_t target = 0;
  std::optional<std::vector<uint8_t>> data;  // what a read puts at target, when it is known
  std::optional<std::vector<uint8_t>> cur;   // the selected item afterwards
  size_t cur_off = 0;
};

Transfer predict(const GuestMemory& mem, uint64_t desc, const Items& items,
                 std::optional<std::vector<uint8_t>> cur, size_t cur_off) {
  std::array<uint8_t, 16> d;
  FUZZ_CHECK(mem.read(GuestAddress(desc), d));
  auto be = [&](size_t at, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v = v << 8 | d[at + i];
    return v;
  };
  uint64_t control = be(0, 4), length = be(4, 4);
  Transfer t;
  t.target = be(8, 8);
  if (control & 0x08) {  // select
    cur = item(items, static_cast<uint16_t>(control >> 16) & static_cast<uint16_t>(~fw_cfg::kWriteChannel));
    cur_off = 0;
  }
  t.cur = cur;
  t.cur_off = cur_off;
  if (control & 0x10) {  // write: no item is writable
    t.control[3] = 1;
    return t;
  }
  bool read = control & 0x02, skip = control & 0x04;
  if (!read && !skip) return t;
  bool fits = length <= kMemBytes && t.target <= kMemBytes - length;
  if (read && length > 0 && !fits) {
    t.control[3] = 1;
    t.cur.reset();  // how far a failed transfer got is not modelled
    return t;
  }
  if (!cur) {
    t.cur.reset();
    return t;
  }
  size_t avail = cur->size() - std::min(cur_off, cur->size());
  size_t n = std::min<uint64_t>(avail, length);
  // The control word is written back last, over any data that landed on it.
  bool hits_control = t.target < desc + 4 && desc < t.target + length;
  if (read && !hits_control) {
    t.data = std::vector<uint8_t>(length, 0);
    std::copy_n(cur->begin() + static_cast<ptrdiff_t>(std::min(cur_off, cur->size())), n, t.data->begin());
  }
  t.cur_off = cur_off + n;
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz_quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const GuestMemory& mem = fuzz::zeroed_memory<kMemBytes>();
  const bool dma = in.u8() & 1;

  // What the guest should read for each key; the file directory is left out (not modelled).
  Items items{
      {fw_cfg::kSignature, {'Q', 'E', 'M', 'U'}},
      {fw_cfg::kId, le_bytes(dma ? 3 : 1, 4)},
      {fw_cfg::kNbCpus, le_bytes(2, 2)},
      {fw_cfg::kMaxCpus, le_bytes(2, 2)},
      {fw_cfg::kRamSize, le_bytes(128 * layout::MiB, 8)},
      {fw_cfg::kMaxRam, le_bytes(kMemBytes, 8)},
  };
  auto fw = std::make_shared<FwCfg>();
  for (auto& [key, bytes] : items)
    if (key != fw_cfg::kSignature && key != fw_cfg::kId) FUZZ_CHECK(fw->add_item(key, bytes));
  std::vector<uint8_t> e820;
  for (uint64_t v : {uint64_t{0}, kMemBytes, uint64_t{1}}) put_be(e820, v, 8);  // any bytes will do
  auto e820_key = fw->add_file("etc/e820", e820);
  FUZZ_CHECK(e820_key);
  items[*e820_key] = e820;
  auto empty_key = fw->add_file("etc/empty", {});
  FUZZ_CHECK(empty_key);
  items[*empty_key] = {};
  if (dma) fw->enable_dma(mem);

  IoBus bus("pio");
  FUZZ_CHECK(bus.insert(platform::kFwCfgPort, dma ? FwCfg::kRangeLenWithDma : FwCfg::kRangeLen, fw, "fw_cfg"));

  // The item the guest reads and how far it has read; nullopt once it cannot be known (the file
  // directory, or after a DMA transfer).
  std::optional<std::vector<uint8_t>> cur = item(items, fw_cfg::kSignature);
  size_t cur_off = 0;
  uint64_t dma_high = 0;
  fuzz::Op op;
  while (fuzz::next_op(in, &op)) {
    switch (op.kind) {
      case fuzz::Op::Read:
        bus.read(platform::kFwCfgPort + op.offset, op.bytes(), 0);
        if (dma && op.offset >= FwCfg::kDmaOffset && op.offset + op.width <= FwCfg::kRangeLenWithDma) {
          for (unsigned i = 0; i < op.width; ++i)
            FUZZ_CHECK(op.data[i] == static_cast<uint8_t>(kDmaSignature[op.offset - FwCfg::kDmaOffset + i]));
        } else if (op.width == 1 && op.offset < FwCfg::kRangeLen) {
          if (cur) {
            FUZZ_CHECK(op.data[0] == (cur_off < cur->size() ? (*cur)[cur_off] : 0));
            ++cur_off;
          }
        } else {
          FUZZ_CHECK(fuzz::all_ones(op.bytes()));
        }
        break;
      case fuzz::Op::Write: {
        // The DMA address register is big-endian; the write of its low half (or all 8 bytes) runs
        // the transfer described at that address.
        std::optional<uint64_t> desc;
        uint64_t be = 0;
        for (unsigned i = 0; i < op.width; ++i) be = be << 8 | op.data[i];
        if (dma && op.offset == 8 && op.width == 4) desc = dma_high << 32 | be;
        if (dma && op.offset == 4 && op.width == 8) desc = be;
        std::optional<Transfer> expect;
        if (desc && *desc <= kMemBytes - 16) expect = predict(mem, *desc, items, cur, cur_off);

        bus.write(platform::kFwCfgPort + op.offset, op.bytes(), 0);

        if (!dma || op.offset < FwCfg::kDmaOffset) {
          if (op.width == 2 && op.offset == 0) {
            auto key = static_cast<uint16_t>(op.value & ~uint64_t{fw_cfg::kWriteChannel});
            cur = item(items, key);
            cur_off = 0;
          }
          break;
        }
        if (op.offset == 4 && op.width == 4) dma_high = be;
        if (!desc) break;
        dma_high = 0;
        if (!expect) {
          cur.reset();  // the descriptor lies outside guest memory, or straddles its end
          break;
        }
        std::array<uint8_t, 4> control;
        FUZZ_CHECK(mem.read(GuestAddress(*desc), control));
        FUZZ_CHECK(control == expect->control);
        if (expect->data) {
          std::vector<uint8_t> got(expect->data->size());
          FUZZ_CHECK(mem.read(GuestAddress(expect->target), got));
          FUZZ_CHECK(got == *expect->data);
        }
        cur = expect->cur;
        cur_off = expect->cur_off;
        break;
      }
      case fuzz::Op::Clock: {
        uint64_t at = op.value & (kMemBytes - 16);
        std::vector<uint8_t> desc;
        put_be(desc, in.le(4), 4);
        put_be(desc, in.le(2), 4);
        put_be(desc, in.le(2), 8);
        FUZZ_CHECK(mem.write(GuestAddress(at), desc));
        break;
      }
      case fuzz::Op::Extra: {
        uint64_t at = in.le(2);
        auto bytes = in.bytes((op.arg & 15) + 1u);
        bytes = bytes.first(std::min<uint64_t>(bytes.size(), kMemBytes - at));
        FUZZ_CHECK(mem.write(GuestAddress(at), bytes));
        break;
      }
    }
  }
  return 0;
}
