#include "boot/elf.h"

#include <elf.h>

#include <cstring>

namespace evmm::boot {

namespace {

// Callers have checked that [off, off + sizeof(T)) lies inside bytes; memcpy avoids misaligned reads.
template <typename T>
T read_at(std::span<const uint8_t> bytes, uint64_t off) {
  T v;
  std::memcpy(&v, bytes.data() + off, sizeof v);
  return v;
}

// True when [off, off + len) lies inside a file of size bytes, without overflowing.
bool inside(uint64_t off, uint64_t len, uint64_t size) { return off <= size && len <= size - off; }

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

template <typename Ehdr, typename Phdr>
Result<ElfImage> parse_class(std::span<const uint8_t> image, bool is64) {
  const unsigned bits = is64 ? 64 : 32;
  if (image.size() < sizeof(Ehdr))
    return make_error(EINVAL, "ELF header truncated: the file is {} bytes, an ELF{} header needs {}", image.size(),
                      bits, sizeof(Ehdr));
  auto eh = read_at<Ehdr>(image, 0);
  if (eh.e_type != ET_EXEC) return make_error(EINVAL, "ELF type {} is not ET_EXEC (an executable)", eh.e_type);
  // elf32-x86-64 exists (x32, some kernels); ELF64 with EM_386 does not.
  bool machine_ok = eh.e_machine == EM_X86_64 || (!is64 && eh.e_machine == EM_386);
  if (!machine_ok) return make_error(EINVAL, "ELF{} machine {} is not x86 (EM_386 or EM_X86_64)", bits, eh.e_machine);
  if (eh.e_version != EV_CURRENT) return make_error(EINVAL, "ELF version {} is not EV_CURRENT", eh.e_version);
  if (eh.e_phentsize != sizeof(Phdr))
    return make_error(EINVAL, "ELF e_phentsize is {}, expected {} for ELF{}", eh.e_phentsize, sizeof(Phdr), bits);
  if (eh.e_phnum == 0) return make_error(EINVAL, "ELF has no program headers");
  if (eh.e_phnum == PN_XNUM) return make_error(EINVAL, "ELF extended program header numbering is not supported");
  uint64_t table = uint64_t{eh.e_phnum} * sizeof(Phdr);
  if (!inside(eh.e_phoff, table, image.size()))
    return make_error(EINVAL, "ELF program headers ({} at offset {:#x}) extend past the end of the {}-byte file",
                      eh.e_phnum, eh.e_phoff, image.size());

  ElfImage out;
  out.is64 = is64;
  out.entry = eh.e_entry;
  out.shoff = eh.e_shoff;
  out.shnum = eh.e_shnum;
  out.shentsize = eh.e_shentsize;
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    auto ph = read_at<Phdr>(image, eh.e_phoff + uint64_t{i} * sizeof(Phdr));
    if (!inside(ph.p_offset, ph.p_filesz, image.size()))
      return make_error(EINVAL, "ELF segment {}: file range offset {:#x} size {:#x} extends past the end of the "
                        "{}-byte file", i, uint64_t{ph.p_offset}, uint64_t{ph.p_filesz}, image.size());
    if (ph.p_type == PT_LOAD && ph.p_filesz > ph.p_memsz)
      return make_error(EINVAL, "ELF segment {}: p_filesz {:#x} is larger than p_memsz {:#x}", i,
                        uint64_t{ph.p_filesz}, uint64_t{ph.p_memsz});
    out.segments.push_back({i, ph.p_type, ph.p_offset, ph.p_vaddr, ph.p_paddr, ph.p_filesz, ph.p_memsz, ph.p_align});
  }
  return out;
}

// Walks the notes in [off, off + size) of the file (gABI "Note Section": name and desc are padded
// to the container's alignment, 4 bytes except for 8-aligned containers).
Result<std::optional<std::span<const uint8_t>>> scan_notes(std::span<const uint8_t> image, uint64_t off,
                                                           uint64_t size, uint64_t align, std::string_view where,
                                                           std::string_view name, uint32_t type) {
  const uint64_t a = align == 8 ? 8 : 4;
  const uint64_t end = off + size;  // the caller has checked that the range is inside the file
  uint64_t pos = off;
  while (end - pos >= sizeof(Elf32_Nhdr)) {
    auto nh = read_at<Elf32_Nhdr>(image, pos);
    uint64_t name_off = pos + sizeof nh;
    uint64_t desc_off = align_up(name_off + nh.n_namesz, a);
    if (desc_off > end || nh.n_descsz > end - desc_off)
      return make_error(EINVAL, "ELF note at file offset {:#x} in {} runs past the end of it", pos, where);
    auto note_name = image.subspan(name_off, nh.n_namesz);
    bool name_ok = note_name.size() == name.size() + 1 && note_name.back() == 0 &&
                   std::memcmp(note_name.data(), name.data(), name.size()) == 0;
    if (name_ok && nh.n_type == type) return std::optional(image.subspan(desc_off, nh.n_descsz));
    uint64_t next = align_up(desc_off + nh.n_descsz, a);
    if (next >= end) break;
    pos = next;
  }
  return std::optional<std::span<const uint8_t>>();
}

template <typename Shdr>
Result<std::optional<std::span<const uint8_t>>> find_in_sections(const ElfImage& elf, std::span<const uint8_t> image,
                                                                  std::string_view name, uint32_t type) {
  if (elf.shnum == 0 || elf.shoff == 0) return std::optional<std::span<const uint8_t>>();
  if (elf.shentsize != sizeof(Shdr))
    return make_error(EINVAL, "ELF e_shentsize is {}, expected {}", elf.shentsize, sizeof(Shdr));
  if (!inside(elf.shoff, uint64_t{elf.shnum} * sizeof(Shdr), image.size()))
    return make_error(EINVAL, "ELF section headers ({} at offset {:#x}) extend past the end of the {}-byte file",
                      elf.shnum, elf.shoff, image.size());
  for (unsigned i = 0; i < elf.shnum; ++i) {
    auto sh = read_at<Shdr>(image, elf.shoff + uint64_t{i} * sizeof(Shdr));
    if (sh.sh_type != SHT_NOTE) continue;
    if (!inside(sh.sh_offset, sh.sh_size, image.size()))
      return make_error(EINVAL, "ELF section {}: offset {:#x} size {:#x} extends past the end of the file", i,
                        uint64_t{sh.sh_offset}, uint64_t{sh.sh_size});
    auto found = TRY(scan_notes(image, sh.sh_offset, sh.sh_size, sh.sh_addralign, fmt::format("section {}", i),
                                name, type));
    if (found) return found;
  }
  return std::optional<std::span<const uint8_t>>();
}

}  // namespace

bool has_elf_magic(std::span<const uint8_t> image) {
  return image.size() >= SELFMAG && std::memcmp(image.data(), ELFMAG, SELFMAG) == 0;
}

Result<ElfImage> parse_elf(std::span<const uint8_t> image) {
  if (!has_elf_magic(image)) return make_error(EINVAL, "not an ELF file");
  if (image.size() < EI_NIDENT)
    return make_error(EINVAL, "ELF header truncated: the file is {} bytes", image.size());
  if (image[EI_DATA] != ELFDATA2LSB) return make_error(EINVAL, "ELF data encoding {} is not little-endian", image[EI_DATA]);
  switch (image[EI_CLASS]) {
    case ELFCLASS32: return parse_class<Elf32_Ehdr, Elf32_Phdr>(image, false);
    case ELFCLASS64: return parse_class<Elf64_Ehdr, Elf64_Phdr>(image, true);
    default: return make_error(EINVAL, "ELF class {} is neither ELFCLASS32 nor ELFCLASS64", image[EI_CLASS]);
  }
}

Result<std::optional<std::span<const uint8_t>>> find_elf_note(const ElfImage& elf, std::span<const uint8_t> image,
                                                              std::string_view name, uint32_t type) {
  bool have_pt_note = false;
  for (const auto& s : elf.segments) {
    if (s.type != PT_NOTE) continue;
    have_pt_note = true;
    auto found = TRY(scan_notes(image, s.offset, s.filesz, s.align, fmt::format("segment {}", s.index), name, type));
    if (found) return found;
  }
  if (have_pt_note) return std::optional<std::span<const uint8_t>>();
  return elf.is64 ? find_in_sections<Elf64_Shdr>(elf, image, name, type)
                  : find_in_sections<Elf32_Shdr>(elf, image, name, type);
}

std::vector<Segment> elf_load_segments(const ElfImage& elf) {
  std::vector<Segment> out;
  for (const auto& s : elf.segments)
    if (s.type == PT_LOAD)
      out.push_back({fmt::format("ELF segment {}", s.index), s.offset, s.filesz, s.paddr, s.memsz});
  return out;
}

uint64_t elf_entry_paddr(const ElfImage& elf) {
  for (const auto& s : elf.segments)
    if (s.type == PT_LOAD && elf.entry >= s.vaddr && elf.entry - s.vaddr < s.memsz)
      return elf.entry - s.vaddr + s.paddr;
  return elf.entry;
}

}  // namespace evmm::boot
