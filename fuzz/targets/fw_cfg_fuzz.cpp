// fw_cfg (devices/fw_cfg.h) with the items evmm's platform gives it, driven by a guest's selector,
// data and DMA accesses. Input: one byte whose bit 0 turns DMA on, then device_ops.h operations at
// port 0x510. The guest's memory is 64 KiB from address 0 and starts zeroed. Extra op: write
// (arg & 15) + 1 bytes at the 2-byte address that follows; clock op (fw_cfg has no clock): write a
// DMA descriptor (control 4 bytes, length 2, target 2, each LE in the input) at address value & 0xfff0.
// Invariants from fw_cfg.h: the data port returns the selected item byte by byte, then zeros, and
// zeros for an unknown key; a 2-byte read returns all-ones; with DMA the registers read "QEMU CFG";
// a finished DMA transfer leaves 0 or the error bit in its descriptor's control word.
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "bus/io_bus.h"
#include "device_ops.h"
#include "devices/fw_cfg.h"
#include "memory/guest_memory.h"
#include "memory/layout.h"

using namespace evmm;

namespace {

constexpr uint64_t kMemBytes = 64 * 1024;
constexpr char kDmaSignature[] = "QEMU CFG";

const GuestMemory& memory() {
  static GuestMemory mem = [] {
    auto m = GuestMemory::create({{GuestAddress(0), kMemBytes}});
    FUZZ_CHECK(m);
    return std::move(*m);
  }();
  return mem;
}

std::vector<uint8_t> le_bytes(uint64_t v, size_t n) {
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
  return out;
}

void put_be(std::vector<uint8_t>& out, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * (n - 1 - i))));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz_quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const GuestMemory& mem = memory();
  FUZZ_CHECK(mem.fill(GuestAddress(0), 0, kMemBytes));
  const bool dma = in.u8() & 1;

  // What the guest should read for each key; the file directory is left out (not modelled).
  std::map<uint16_t, std::vector<uint8_t>> items{
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
  std::optional<std::vector<uint8_t>> cur = items[fw_cfg::kSignature];
  size_t cur_off = 0;
  uint64_t dma_high = 0;
  fuzz::Op op;
  while (fuzz::next_op(in, &op)) {
    switch (op.kind) {
      case fuzz::Op::Read:
        bus.read(platform::kFwCfgPort + op.offset, op.bytes());
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
        bus.write(platform::kFwCfgPort + op.offset, op.bytes());
        if (op.width == 2 && op.offset == 0) {
          auto key = static_cast<uint16_t>(op.value & ~uint64_t{fw_cfg::kWriteChannel});
          auto it = items.find(key);
          if (key == fw_cfg::kFileDir) cur.reset();
          else cur = it == items.end() ? std::vector<uint8_t>{} : it->second;
          cur_off = 0;
        }
        if (!dma) break;
        // The address register is big-endian; the write of its low half (or all 8 bytes) runs the
        // transfer, which may select another item.
        uint64_t be = 0;
        for (unsigned i = 0; i < op.width; ++i) be = be << 8 | op.data[i];
        if (op.offset == 4 && op.width == 4) {
          dma_high = be;
          break;
        }
        std::optional<uint64_t> desc;
        if (op.offset == 8 && op.width == 4) desc = dma_high << 32 | be;
        if (op.offset == 4 && op.width == 8) desc = be;
        if (!desc) break;
        dma_high = 0;
        cur.reset();
        if (*desc <= kMemBytes - 16) {
          uint8_t control[4];
          FUZZ_CHECK(mem.read(GuestAddress(*desc), control));
          FUZZ_CHECK(control[0] == 0 && control[1] == 0 && control[2] == 0 && control[3] <= 1);
        }
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
