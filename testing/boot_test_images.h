// Builders for synthetic boot images, shared by the boot tests: ELF32/ELF64 files with chosen
// program headers and notes, and multiboot headers with or without the a.out kludge.
#pragma once

#include <elf.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "boot/multiboot.h"
#include "memory/layout.h"

namespace evmm::boot::test_images {

using Bytes = std::vector<uint8_t>;

struct TestSegment {
  uint64_t paddr = 0;
  Bytes data = {};
  uint64_t memsz = 0;              // 0: data.size()
  std::optional<uint64_t> vaddr = std::nullopt;  // default: paddr
  uint32_t type = PT_LOAD;
};

struct TestNote {
  std::string name;
  uint32_t type;
  Bytes desc;
};

struct ElfSpec {
  bool is64 = false;
  uint64_t entry = 0;
  std::vector<TestSegment> segments;
  std::vector<TestNote> notes;
  bool notes_in_section = false;  // an SHT_NOTE section instead of a PT_NOTE segment
};

// A failed result with this errno and a context that contains fragment.
template <typename T>
::testing::AssertionResult fails_with(const Result<T>& r, int code, std::string_view fragment) {
  if (r) return ::testing::AssertionFailure() << "succeeded; expected errno " << code << " with '" << fragment << "'";
  const Error& e = r.error();
  if (e.code() != code) return ::testing::AssertionFailure() << "errno " << e.code() << ", not " << code << ": " << e.message();
  if (e.context().find(fragment) == std::string::npos)
    return ::testing::AssertionFailure() << "message lacks '" << fragment << "': " << e.message();
  return ::testing::AssertionSuccess() << e.message();
}

inline GuestMemory make_memory(uint64_t bytes = 64 * layout::MiB) {
  auto mem = GuestMemory::create_pc(bytes);
  if (!mem) std::abort();
  return std::move(*mem);
}

inline Bytes read_guest(const GuestMemory& mem, uint64_t addr, size_t n) {
  Bytes out(n);
  EXPECT_TRUE(mem.read(GuestAddress(addr), out)) << fmt::format("reading {} bytes at {:#x}", n, addr);
  return out;
}

// The NUL-terminated string at addr (empty if unreadable).
inline std::string read_cstring(const GuestMemory& mem, uint64_t addr) {
  std::string s;
  for (;; ++addr) {
    auto c = mem.read_obj<char>(GuestAddress(addr));
    if (!c || *c == 0) return s;
    s.push_back(*c);
  }
}

// Bytes that differ at every offset, so a misplaced copy shows.
// Loads an image with a command line and modules, as the VMM would.
inline Result<BootEntry> load(const GuestMemory& mem, const Bytes& image, std::string cmdline = "",
                              std::vector<Module> modules = {}) {
  BootConfig cfg;
  cfg.image = image;
  cfg.cmdline = std::move(cmdline);
  cfg.modules = std::move(modules);
  return load_image(mem, cfg);
}

inline Bytes pattern(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = uint8_t(seed + i * 7 + (i >> 8));
  return b;
}

inline void put_bytes(Bytes& out, uint64_t off, const void* p, size_t n) {
  if (n == 0) return;
  if (out.size() < off + n) out.resize(off + n);
  std::memcpy(out.data() + off, p, n);
}

template <typename T>
T get(const Bytes& b, uint64_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}

template <typename T>
void set(Bytes& b, uint64_t off, const T& v) {
  put_bytes(b, off, &v, sizeof v);
}

inline Bytes encode_notes(const std::vector<TestNote>& notes) {
  Bytes out;
  for (const auto& n : notes) {
    Elf32_Nhdr h{uint32_t(n.name.size() + 1), uint32_t(n.desc.size()), n.type};
    put_bytes(out, out.size(), &h, sizeof h);
    Bytes name(n.name.begin(), n.name.end());
    name.resize((name.size() + 1 + 3) & ~size_t{3}, 0);
    out.insert(out.end(), name.begin(), name.end());
    Bytes desc = n.desc;
    desc.resize((desc.size() + 3) & ~size_t{3}, 0);
    out.insert(out.end(), desc.begin(), desc.end());
  }
  return out;
}

template <typename Ehdr, typename Phdr, typename Shdr>
Bytes build_elf_class(const ElfSpec& spec, uint8_t cls, uint16_t machine) {
  Bytes notes = encode_notes(spec.notes);
  bool note_segment = !spec.notes.empty() && !spec.notes_in_section;
  size_t phnum = spec.segments.size() + (note_segment ? 1 : 0);
  uint64_t off = sizeof(Ehdr) + phnum * sizeof(Phdr);
  uint64_t notes_off = off;
  off = (off + notes.size() + 15) & ~uint64_t{15};

  Bytes out(off, 0);
  std::vector<Phdr> phdrs;
  for (const auto& s : spec.segments) {
    Phdr ph{};
    ph.p_type = s.type;
    ph.p_offset = off;
    ph.p_paddr = s.paddr;
    ph.p_vaddr = s.vaddr.value_or(s.paddr);
    ph.p_filesz = s.data.size();
    ph.p_memsz = s.memsz ? s.memsz : s.data.size();
    ph.p_align = 16;
    phdrs.push_back(ph);
    put_bytes(out, off, s.data.data(), s.data.size());
    off = (off + s.data.size() + 15) & ~uint64_t{15};
    out.resize(off, 0);
  }
  if (note_segment) {
    Phdr ph{};
    ph.p_type = PT_NOTE;
    ph.p_offset = notes_off;
    ph.p_filesz = ph.p_memsz = notes.size();
    ph.p_align = 4;
    phdrs.push_back(ph);
  }
  put_bytes(out, notes_off, notes.data(), notes.size());

  Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = cls;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = machine;
  eh.e_version = EV_CURRENT;
  eh.e_entry = spec.entry;
  eh.e_phoff = sizeof(Ehdr);
  eh.e_ehsize = sizeof(Ehdr);
  eh.e_phentsize = sizeof(Phdr);
  eh.e_phnum = uint16_t(phnum);
  if (spec.notes_in_section && !spec.notes.empty()) {
    // A null section, then the note section.
    Shdr sh[2]{};
    sh[1].sh_type = SHT_NOTE;
    sh[1].sh_offset = notes_off;
    sh[1].sh_size = notes.size();
    sh[1].sh_addralign = 4;
    eh.e_shoff = out.size();
    eh.e_shentsize = sizeof(Shdr);
    eh.e_shnum = 2;
    put_bytes(out, out.size(), sh, sizeof sh);
  }
  put_bytes(out, 0, &eh, sizeof eh);
  for (size_t i = 0; i < phdrs.size(); ++i) put_bytes(out, sizeof(Ehdr) + i * sizeof(Phdr), &phdrs[i], sizeof(Phdr));
  return out;
}

inline Bytes build_elf(const ElfSpec& spec) {
  return spec.is64 ? build_elf_class<Elf64_Ehdr, Elf64_Phdr, Elf64_Shdr>(spec, ELFCLASS64, EM_X86_64)
                   : build_elf_class<Elf32_Ehdr, Elf32_Phdr, Elf32_Shdr>(spec, ELFCLASS32, EM_386);
}

// File offset of program header i.
inline uint64_t phdr_offset(bool is64, unsigned i) {
  return is64 ? sizeof(Elf64_Ehdr) + i * sizeof(Elf64_Phdr) : sizeof(Elf32_Ehdr) + i * sizeof(Elf32_Phdr);
}

struct KludgeFields {
  uint32_t header_addr = 0, load_addr = 0, load_end_addr = 0, bss_end_addr = 0, entry_addr = 0;
};

// A multiboot header of 12, 32 (flag 16) or 48 (flag 2) bytes with a correct checksum.
inline Bytes multiboot_header(uint32_t flags, KludgeFields k = {}) {
  MultibootHeader h{};
  h.magic = kMultibootHeaderMagic;
  h.flags = flags;
  h.checksum = uint32_t(-(h.magic + h.flags));
  h.header_addr = k.header_addr;
  h.load_addr = k.load_addr;
  h.load_end_addr = k.load_end_addr;
  h.bss_end_addr = k.bss_end_addr;
  h.entry_addr = k.entry_addr;
  size_t n = (flags & uint32_t(MultibootFlag::VideoMode)) ? 48 : (flags & uint32_t(MultibootFlag::AoutKludge)) ? 32 : 12;
  Bytes out(n);
  std::memcpy(out.data(), &h, n);
  return out;
}

// A flat a.out-kludge image: `prefix` bytes of code, the header, then code up to `size` bytes.
// Loaded at load_addr, the header lands at load_addr + prefix.
struct KludgeImage {
  Bytes bytes;
  KludgeFields fields;
};
inline KludgeImage kludge_image(uint32_t load_addr, uint64_t prefix, uint64_t size, uint32_t bss = 0) {
  KludgeFields k;
  k.load_addr = load_addr;
  k.header_addr = uint32_t(load_addr + prefix);
  k.load_end_addr = 0;
  k.bss_end_addr = bss ? uint32_t(load_addr + size + bss) : 0;
  k.entry_addr = uint32_t(load_addr + prefix + 32);
  Bytes b = pattern(size, 0x31);
  Bytes h = multiboot_header(uint32_t(MultibootFlag::AoutKludge) | uint32_t(MultibootFlag::PageAlign) |
                                 uint32_t(MultibootFlag::MemoryInfo),
                             k);
  std::memcpy(b.data() + prefix, h.data(), h.size());
  return {b, k};
}

// Rewrites the kludge fields of the header at offset `at` and fixes its checksum.
inline void set_kludge(Bytes& image, uint64_t at, const KludgeFields& k) {
  uint32_t flags = get<uint32_t>(image, at + 4);
  Bytes h = multiboot_header(flags, k);
  put_bytes(image, at, h.data(), h.size());
}

}  // namespace evmm::boot::test_images
