#include "devices/fw_cfg.h"

#include <algorithm>

#include "base/log.h"

namespace evmm {
namespace {

template <typename T>
std::vector<uint8_t> le_bytes(T v) {
  std::vector<uint8_t> out(sizeof(T));
  for (size_t i = 0; i < sizeof(T); ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
  return out;
}

void put_be(std::vector<uint8_t>& out, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * (n - 1 - i))));
}

// One FW_CFG_FILE_DIR entry: u32 size, u16 select, u16 reserved, char name[56], all big-endian.
constexpr size_t kDirEntrySize = 64;

uint64_t get_be(std::span<const uint8_t> b) {
  uint64_t v = 0;
  for (uint8_t x : b) v = (v << 8) | x;
  return v;
}

// FWCfgDmaAccess control bits (fw_cfg.rst, "DMA interface").
constexpr uint32_t kDmaError = 0x01, kDmaRead = 0x02, kDmaSkip = 0x04, kDmaSelect = 0x08, kDmaWrite = 0x10;
constexpr char kDmaSignature[] = "QEMU CFG";

}  // namespace

FwCfg::FwCfg() {
  items_[fw_cfg::kSignature] = {'Q', 'E', 'M', 'U'};
  items_[fw_cfg::kId] = le_bytes<uint32_t>(1);  // traditional interface only
  rebuild_file_dir();
  cur_ = items_.find(fw_cfg::kSignature);
}

void FwCfg::enable_dma(const GuestMemory& mem) {
  std::lock_guard lock(mu_);
  mem_ = &mem;
  items_[fw_cfg::kId] = le_bytes<uint32_t>(3);  // traditional and DMA
}

Result<void> FwCfg::add_item(uint16_t key, std::vector<uint8_t> data) {
  if (key & fw_cfg::kWriteChannel)
    return make_error(EINVAL, "fw_cfg: key {:#x} has the write-channel bit set", key);
  if (key == fw_cfg::kFileDir || (key >= fw_cfg::kFileFirst && key < fw_cfg::kFileFirst + kMaxFiles))
    return make_error(EINVAL, "fw_cfg: key {:#x} belongs to the file directory; use add_file", key);
  std::lock_guard lock(mu_);
  if (!items_.emplace(key, std::move(data)).second)
    return make_error(EEXIST, "fw_cfg: key {:#x} already has an item", key);
  return {};
}

Result<void> FwCfg::add_u16(uint16_t key, uint16_t value) { return add_item(key, le_bytes(value)); }
Result<void> FwCfg::add_u32(uint16_t key, uint32_t value) { return add_item(key, le_bytes(value)); }
Result<void> FwCfg::add_u64(uint16_t key, uint64_t value) { return add_item(key, le_bytes(value)); }

Result<uint16_t> FwCfg::add_file(std::string name, std::vector<uint8_t> data) {
  if (name.empty()) return make_error(EINVAL, "fw_cfg: empty file name");
  if (name.size() > kMaxNameLen)
    return make_error(ENAMETOOLONG, "fw_cfg: file name '{}' is longer than {} characters", name, kMaxNameLen);
  if (name.find('\0') != std::string::npos) return make_error(EINVAL, "fw_cfg: file name contains a NUL");
  if (data.size() > UINT32_MAX) return make_error(EFBIG, "fw_cfg: file '{}' is over 4 GiB", name);
  std::lock_guard lock(mu_);
  for (const auto& f : files_)
    if (f.first == name) return make_error(EEXIST, "fw_cfg: file '{}' already exists", name);
  if (files_.size() >= kMaxFiles)
    return make_error(ENOSPC, "fw_cfg: no room for '{}': at most {} files", name, kMaxFiles);
  uint16_t key = static_cast<uint16_t>(fw_cfg::kFileFirst + files_.size());
  items_[key] = std::move(data);
  files_.emplace_back(std::move(name), key);
  rebuild_file_dir();
  return key;
}

void FwCfg::rebuild_file_dir() {
  // Listed sorted by name, as QEMU lists them; keys stay in the order the files were added.
  auto sorted = files_;
  std::sort(sorted.begin(), sorted.end());
  std::vector<uint8_t> dir;
  dir.reserve(4 + sorted.size() * kDirEntrySize);
  put_be(dir, sorted.size(), 4);
  for (const auto& [name, key] : sorted) {
    put_be(dir, items_[key].size(), 4);
    put_be(dir, key, 2);
    put_be(dir, 0, 2);
    size_t at = dir.size();
    dir.resize(at + 56, 0);
    std::copy(name.begin(), name.end(), dir.begin() + static_cast<ptrdiff_t>(at));
  }
  // Replacing the contents in place keeps cur_ valid for a guest that has the directory selected.
  items_[fw_cfg::kFileDir] = std::move(dir);
}

void FwCfg::read(const BusRead& io) {
  if (io.offset >= kDmaOffset && mem_ && io.offset + io.data.size() <= kRangeLenWithDma) {
    std::copy_n(kDmaSignature + (io.offset - kDmaOffset), io.data.size(), io.data.begin());
    return;
  }
  if (io.data.size() != 1 || io.offset >= kRangeLen) {
    std::fill(io.data.begin(), io.data.end(), 0xff);
    stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("fw_cfg: {}-byte read at offset {} ignored", io.data.size(), io.offset);
    return;
  }
  std::lock_guard lock(mu_);
  // Past an item's end, and for an unknown key, the data port reads 0 (fw_cfg.rst).
  if (cur_ == items_.end() || cur_offset_ >= cur_->second.size()) {
    io.data[0] = 0;
    return;
  }
  io.data[0] = cur_->second[cur_offset_++];
}

void FwCfg::write(const BusWrite& io) {
  if (io.offset >= kDmaOffset && mem_) {
    dma_register_write(io.offset, io.data);
    return;
  }
  if (io.data.size() == 1 && io.offset < kRangeLen) {
    stats_.data_writes.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("fw_cfg: data-port write {:#x} ignored (write channel not supported)", io.data[0]);
    return;
  }
  if (io.data.size() != 2 || io.offset != 0) {
    stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("fw_cfg: {}-byte write at offset {} ignored", io.data.size(), io.offset);
    return;
  }
  uint16_t selector = static_cast<uint16_t>(io.data[0] | (io.data[1] << 8));
  uint16_t key = selector & static_cast<uint16_t>(~fw_cfg::kWriteChannel);
  std::lock_guard lock(mu_);
  stats_.selects.fetch_add(1, std::memory_order_relaxed);
  cur_ = items_.find(key);
  cur_offset_ = 0;
  if (cur_ == items_.end()) {
    stats_.unknown_selects.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("fw_cfg: guest selected unknown key {:#x}", selector);
  }
}

void FwCfg::dma_register_write(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mu_);
  uint64_t address;
  if (offset == kDmaOffset && data.size() == 4) {
    dma_high_ = static_cast<uint32_t>(get_be(data));
    return;
  } else if (offset == kDmaOffset + 4 && data.size() == 4) {
    address = uint64_t{dma_high_} << 32 | get_be(data);
  } else if (offset == kDmaOffset && data.size() == 8) {
    address = get_be(data);
  } else {
    stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("fw_cfg: {}-byte DMA register write at offset {} ignored", data.size(), offset);
    return;
  }
  dma_high_ = 0;
  uint8_t access[16];
  if (!mem_->read(GuestAddress(address), access)) {
    stats_.dma_errors.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("fw_cfg: DMA descriptor at {:#x} is outside guest memory", address);
    return;
  }
  std::span<const uint8_t> a(access);
  uint32_t control = static_cast<uint32_t>(get_be(a.subspan(0, 4)));
  uint32_t length = static_cast<uint32_t>(get_be(a.subspan(4, 4)));
  uint64_t target = get_be(a.subspan(8, 8));
  uint32_t result = dma_transfer(control, length, target);
  stats_.dma_transfers.fetch_add(1, std::memory_order_relaxed);
  if (result & kDmaError) stats_.dma_errors.fetch_add(1, std::memory_order_relaxed);
  uint8_t out[4] = {static_cast<uint8_t>(result >> 24), static_cast<uint8_t>(result >> 16),
                    static_cast<uint8_t>(result >> 8), static_cast<uint8_t>(result)};
  // The guest polls the control word: 0 (or just the error bit) means the transfer is over.
  if (!mem_->write(GuestAddress(address), out)) LOG_DEBUG("fw_cfg: DMA descriptor at {:#x} vanished", address);
}

uint32_t FwCfg::dma_transfer(uint32_t control, uint32_t length, uint64_t address) {
  if (control & kDmaSelect) {
    cur_ = items_.find(static_cast<uint16_t>(control >> 16) & static_cast<uint16_t>(~fw_cfg::kWriteChannel));
    cur_offset_ = 0;
  }
  // Writes need a writable item, and there are none: the write channel is not supported.
  if (control & kDmaWrite) {
    stats_.data_writes.fetch_add(1, std::memory_order_relaxed);
    return kDmaError;
  }
  bool read = control & kDmaRead;
  if (!read && !(control & kDmaSkip)) return 0;
  // Read copies the item from the current offset, zero-filling past its end; skip only advances.
  size_t avail = cur_ == items_.end() ? 0 : cur_->second.size() - std::min<size_t>(cur_offset_, cur_->second.size());
  size_t n = std::min<size_t>(avail, length);
  if (read) {
    if (n && !mem_->write(GuestAddress(address), std::span(cur_->second).subspan(cur_offset_, n))) return kDmaError;
    if (length > n && !mem_->fill(GuestAddress(address) + n, 0, length - n)) return kDmaError;
  }
  cur_offset_ += static_cast<uint32_t>(n);
  return 0;
}

}  // namespace evmm
