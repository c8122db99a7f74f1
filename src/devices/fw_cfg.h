// QEMU's firmware configuration interface (fw_cfg), legacy I/O port flavour: the guest selects an
// item by key and reads its bytes one at a time (QEMU docs/specs/fw_cfg.rst).
//
// Range: insert at platform::kFwCfgPort (0x510) with length FwCfg::kRangeLen (2); this is QEMU's
// combined selector/data port:
//   - a 2-byte write at offset 0 is the selector (little-endian, as on x86);
//   - a 1-byte read at offset 1 (or at offset 0, as QEMU also answers) returns the next data byte;
//   - a 1-byte write is a data-port write: the write channel is deprecated, so it is ignored and
//     counted in stats().data_writes;
//   - anything else (a 2-byte read) is ignored, counted in stats().bad_accesses, reads all-ones.
// After enable_dma(), insert it with length kRangeLenWithDma (12) instead: offsets 4-11 are then the
// DMA address register (platform::kFwCfgDmaPort, 0x514), big-endian, written as two 4-byte halves;
// the write of the low half at offset 8 runs the transfer. Reads there return "QEMU CFG", and
// FW_CFG_ID reports the DMA interface (bit 1). Without enable_dma only bit 0 is reported.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "bus/io_bus.h"
#include "memory/guest_memory.h"

namespace evmm {

namespace fw_cfg {
// Well-known selector keys (QEMU include/standard-headers/linux/qemu_fw_cfg.h).
constexpr uint16_t kSignature = 0x0000;  // "QEMU"
constexpr uint16_t kId = 0x0001;         // u32 LE feature bits: bit 0 traditional, bit 1 DMA
constexpr uint16_t kRamSize = 0x0003;    // u64 LE
constexpr uint16_t kNbCpus = 0x0005;     // u16 LE
constexpr uint16_t kMaxCpus = 0x000f;    // u16 LE
// u64 LE, top of guest-physical RAM. Not a QEMU key: kvm-unit-tests' historical lib/x86/fwcfg.h
// defines FW_CFG_MAX_RAM as 0x11 and reads it to size memory.
constexpr uint16_t kMaxRam = 0x0011;
constexpr uint16_t kFileDir = 0x0019;    // generated from add_file; big-endian
constexpr uint16_t kFileFirst = 0x0020;  // the first file's key; later files follow in order added
constexpr uint16_t kWriteChannel = 0x4000;  // selector bit asking for write access; ignored
}  // namespace fw_cfg

struct FwCfgStats {
  std::atomic<uint64_t> selects{0};
  std::atomic<uint64_t> unknown_selects{0};  // selected a key with no item: its reads return 0
  std::atomic<uint64_t> data_writes{0};      // writes to the deprecated write channel, ignored
  std::atomic<uint64_t> bad_accesses{0};
  std::atomic<uint64_t> dma_transfers{0};
  std::atomic<uint64_t> dma_errors{0};  // transfers that reported FW_CFG_DMA_CTL_ERROR or could not
};

class FwCfg final : public BusDevice {
 public:
  static constexpr uint64_t kRangeLen = 2;
  static constexpr uint64_t kRangeLenWithDma = 12;
  static constexpr uint64_t kDmaOffset = 4;
  // As many file slots as QEMU's default (FW_CFG_FILE_SLOTS_DFLT): keys 0x20-0x3f.
  static constexpr size_t kMaxFiles = 32;
  // A file directory entry's name field is 56 bytes including the terminating NUL.
  static constexpr size_t kMaxNameLen = 55;

  // Starts with FW_CFG_SIGNATURE, FW_CFG_ID and an empty FW_CFG_FILE_DIR.
  FwCfg();

  // Adds a fixed-key item. EEXIST if the key has an item; EINVAL for a key in the file range,
  // FW_CFG_FILE_DIR, or with the write-channel bit set.
  Result<void> add_item(uint16_t key, std::vector<uint8_t> data);
  Result<void> add_u16(uint16_t key, uint16_t value);
  Result<void> add_u32(uint16_t key, uint32_t value);
  Result<void> add_u64(uint16_t key, uint64_t value);
  // Adds a named file and lists it in FW_CFG_FILE_DIR; returns its key. EEXIST for a duplicate
  // name, ENAMETOOLONG past kMaxNameLen characters, EINVAL for an empty name, ENOSPC past kMaxFiles.
  Result<uint16_t> add_file(std::string name, std::vector<uint8_t> data);

  // Turns on the DMA interface; mem must outlive the device. Call before the guest runs.
  void enable_dma(const GuestMemory& mem);

  void read(const BusRead& io) override;
  void write(const BusWrite& io) override;

  const FwCfgStats& stats() const { return stats_; }

 private:
  void rebuild_file_dir();
  void dma_register_write(uint64_t offset, std::span<const uint8_t> data);
  // Runs the FWCfgDmaAccess at guest address addr; returns the control word to write back.
  uint32_t dma_transfer(uint32_t control, uint32_t length, uint64_t address);

  std::mutex mu_;
  std::map<uint16_t, std::vector<uint8_t>> items_;
  std::vector<std::pair<std::string, uint16_t>> files_;  // in the order added
  std::map<uint16_t, std::vector<uint8_t>>::const_iterator cur_;  // items_.end(): unknown key
  uint32_t cur_offset_ = 0;
  const GuestMemory* mem_ = nullptr;  // set by enable_dma
  uint32_t dma_high_ = 0;             // the high half of the DMA address, written first

  FwCfgStats stats_;
};

}  // namespace evmm
