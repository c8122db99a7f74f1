#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<target>/: small, valid or nearly valid inputs that put
each fuzzer on the paths a real guest or image takes. Deterministic; run it after changing an input
format and commit what it writes. Usage: fuzz/make_corpus.py [OUTDIR]"""

import os
import shutil
import struct
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
MiB = 1 << 20
corpus = {}


def seed(target, name, data):
    corpus.setdefault(target, {})[name] = bytes(data)


# --- images ---------------------------------------------------------------------------------------

MB_MAGIC = 0x1BADB002
XEN_ELFNOTE_PHYS32_ENTRY = 18
NT_GNU_BUILD_ID = 3
PT_LOAD, PT_NOTE = 1, 4
SHT_NOTE = 7


def mb_header(flags, header_addr=0, load_addr=0, load_end=0, bss_end=0, entry=0):
    h = struct.pack("<III", MB_MAGIC, flags, (-(MB_MAGIC + flags)) & 0xFFFFFFFF)
    if flags & (1 << 16) or flags & (1 << 2):
        h += struct.pack("<5I", header_addr, load_addr, load_end, bss_end, entry)
    if flags & (1 << 2):
        h += struct.pack("<4I", 0, 1024, 768, 32)
    return h


def note(name, ntype, desc):
    n = name.encode() + b"\0"
    pad = lambda b: b + b"\0" * (-len(b) % 4)
    return struct.pack("<III", len(n), len(desc), ntype) + pad(n) + pad(desc)


def elf(is64, entry, segments, notes=b"", notes_in_section=False, extra=b""):
    """segments: (paddr, vaddr, data, memsz). A PT_NOTE (or SHT_NOTE section) holds notes; extra
    bytes (a multiboot header, say) go right after the program headers."""
    ehsize, phsize, shsize = (64, 56, 64) if is64 else (52, 32, 40)
    phnum = len(segments) + (1 if notes and not notes_in_section else 0)
    off = ehsize + phnum * phsize
    body = bytearray(extra)
    extra_off = off
    off += len(body)
    notes_off = off
    body += notes
    off += len(notes)
    phdrs = []
    for paddr, vaddr, data, memsz in segments:
        pad = -off % 16
        body += b"\0" * pad
        off += pad
        phdrs.append((PT_LOAD, off, vaddr, paddr, len(data), memsz, 16))
        body += data
        off += len(data)
    if notes and not notes_in_section:
        phdrs.append((PT_NOTE, notes_off, 0, 0, len(notes), len(notes), 4))
    shoff = shnum = 0
    if notes and notes_in_section:
        shoff, shnum = off, 2
        if is64:
            sh = b"\0" * 64 + struct.pack("<IIQQQQIIQQ", 0, SHT_NOTE, 0, 0, notes_off, len(notes), 0, 0, 4, 0)
        else:
            sh = b"\0" * 40 + struct.pack("<10I", 0, SHT_NOTE, 0, 0, notes_off, len(notes), 0, 0, 4, 0)
        body += sh
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 1, 1]) + b"\0" * 9
    if is64:
        eh = ident + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, entry, ehsize, shoff, 0, ehsize, phsize, phnum,
                                 shsize if shnum else 0, shnum, 0)
        ph = b"".join(struct.pack("<IIQQQQQQ", t, 7, o, v, p, fs, ms, a) for t, o, v, p, fs, ms, a in phdrs)
    else:
        eh = ident + struct.pack("<HHIIIIIHHHHHH", 2, 3, 1, entry, ehsize, shoff, 0, ehsize, phsize, phnum,
                                 shsize if shnum else 0, shnum, 0)
        ph = b"".join(struct.pack("<8I", t, o, v, p, fs, ms, 7, a) for t, o, v, p, fs, ms, a in phdrs)
    assert len(eh) == ehsize
    image = eh + ph + bytes(body)
    assert extra_off == ehsize + len(ph)
    return image


code = bytes(range(0x90, 0x90 + 64))  # stands in for the kernel's text

# multiboot: the a.out kludge (flat binary) and ELF images carrying a header.
KLUDGE = (1 << 16) | 3
flat = bytearray(code * 4)
flat[0:32] = mb_header(KLUDGE, header_addr=MiB, load_addr=MiB, load_end=0, bss_end=MiB + 0x2000, entry=MiB + 32)
seed("multiboot", "kludge_flat", flat)
flat2 = bytearray(code * 2 + b"\0" * 64)
flat2[64:96] = mb_header(KLUDGE, header_addr=2 * MiB + 64, load_addr=2 * MiB, load_end=2 * MiB + 128, entry=2 * MiB)
seed("multiboot", "kludge_load_end", flat2)
seed("multiboot", "video_mode", mb_header(0x10007, MiB, MiB, 0, 0, MiB + 48) + code)
seed("multiboot", "elf32", elf(False, MiB, [(MiB, MiB, code, 0x1000)], extra=mb_header(3)))
seed("multiboot", "elf64_high", elf(True, 0xFFFFFFFF80100000, [(MiB, 0xFFFFFFFF80100000, code * 2, 0x200)],
                                    extra=mb_header(2)))
seed("multiboot", "bad_checksum", struct.pack("<III", MB_MAGIC, 0, 0) + code)
late = bytearray(8192) + mb_header(KLUDGE, MiB, MiB, 0, 0, MiB)
seed("multiboot", "header_past_8k", late)

# PVH: the PHYS32_ENTRY note in a PT_NOTE segment or in a section, 4 or 8 bytes.
pvh_note4 = note("Xen", XEN_ELFNOTE_PHYS32_ENTRY, struct.pack("<I", MiB))
pvh_note8 = note("Xen", XEN_ELFNOTE_PHYS32_ENTRY, struct.pack("<Q", MiB + 16))
gnu_note = note("GNU", NT_GNU_BUILD_ID, bytes(range(20)))
seed("pvh", "elf64_note", elf(True, 0xFFFFFFFF81000000, [(MiB, 0xFFFFFFFF81000000, code, 0x3000)], gnu_note + pvh_note8))
seed("pvh", "elf32_note", elf(False, MiB, [(MiB, MiB, code, 0x100), (MiB + 0x1000, MiB + 0x1000, code, 64)], pvh_note4))
seed("pvh", "elf64_section_note", elf(True, MiB, [(MiB, MiB, code, 0x100)], pvh_note4, notes_in_section=True))
seed("pvh", "bad_desc_size", elf(True, MiB, [(MiB, MiB, code, 0x100)], note("Xen", XEN_ELFNOTE_PHYS32_ENTRY, b"\1\2")))

# Plain ELF, and one of each other format, since this target goes through load_image.
seed("elf", "elf32_plain", elf(False, MiB + 4, [(MiB, MiB, code, 0x100)]))
seed("elf", "elf64_two_segments", elf(True, 0xFFFFFFFF81000010, [(MiB, 0xFFFFFFFF81000000, code, 0x2000),
                                                                (MiB + 0x4000, 0xFFFFFFFF81004000, code, 0x80)]))
seed("elf", "elf64_build_id", elf(True, MiB, [(MiB, MiB, code, 0x100)], gnu_note, notes_in_section=True))
seed("elf", "elf32_overlap", elf(False, MiB, [(MiB, MiB, code, 0x100), (MiB + 0x80, MiB + 0x80, code, 0x100)]))
seed("elf", "pvh", corpus["pvh"]["elf64_note"])
seed("elf", "multiboot", corpus["multiboot"]["kludge_flat"])
seed("elf", "bzimage_magic", b"\0" * 0x202 + b"HdrS" + b"\0" * 16)

# Linux bzImages (targets/bzimage_fuzz.cpp): a 2.15 setup header and a tiny ELF64 vmlinux as the
# payload, compressed as the kernel's build does (the size appended, but to gzip). lz4 and zstd have
# no module in Python's standard library, so their command-line tools compress those two.
def compress(kind, data):
    import bz2, gzip, lzma, subprocess
    size = struct.pack("<I", len(data))
    if kind == "gzip":
        return gzip.compress(data, 9, mtime=0)
    if kind == "bzip2":
        return bz2.compress(data, 9) + size
    if kind == "lzma":
        return lzma.compress(data, format=lzma.FORMAT_ALONE) + size
    if kind == "xz":
        return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32) + size
    if kind == "lz4":
        return subprocess.run(["lz4", "-l", "-9", "-c"], input=data, capture_output=True, check=True).stdout + size
    return subprocess.run(["zstd", "-19", "-c", "-q"], input=data, capture_output=True, check=True).stdout + size


def bzimage(payload, version=0x020F, xloadflags=0x3, relocatable=1):
    setup_sects = 3
    img = bytearray((setup_sects + 1) * 512)
    img[0x1FE:0x200] = b"\x55\xaa"
    img[0x200:0x202] = b"\xeb\x6a"
    hdr = {0x1F1: ("B", setup_sects), 0x202: ("I", 0x53726448), 0x206: ("H", version), 0x211: ("B", 1),
           0x214: ("I", MiB), 0x22C: ("I", 0x7FFFFFFF), 0x230: ("I", 0x200000), 0x234: ("B", relocatable),
           0x235: ("B", 21), 0x236: ("H", xloadflags), 0x238: ("I", 0x7FF), 0x248: ("I", 0x40),
           0x24C: ("I", len(payload)), 0x258: ("Q", MiB), 0x260: ("I", MiB)}
    for off, (fmt, v) in hdr.items():
        struct.pack_into("<" + fmt, img, off, v)
    kernel = bytes(range(0x40)) + payload
    kernel += bytes(-len(kernel) % 16)
    struct.pack_into("<I", img, 0x1F4, len(kernel) // 16)
    return bytes(img) + kernel


vmlinux = elf(True, MiB, [(MiB, 0xFFFFFFFF81000000, code, 0x2000), (MiB + 0x10000, 0xFFFFFFFF81010000, code, 0x100)])
for kind in ["gzip", "bzip2", "lzma", "xz", "lz4", "zstd"]:
    seed("bzimage", kind, bzimage(compress(kind, vmlinux)))
seed("bzimage", "protocol_2_09", bzimage(compress("gzip", vmlinux), version=0x0209))
seed("bzimage", "no_kernel64", bzimage(compress("gzip", vmlinux), xloadflags=0))
seed("bzimage", "not_relocatable", bzimage(compress("zstd", vmlinux), relocatable=0))
seed("bzimage", "payload_not_elf", bzimage(compress("xz", code * 8)))


# --- devices (fuzz/targets/device_ops.h) ----------------------------------------------------------

LOG2 = {1: 0, 2: 1, 4: 2, 8: 3}


def rd(off, width=1):
    return bytes([(off << 4) | (LOG2[width] << 2)])


def wr(off, value, width=1):
    return bytes([(off << 4) | (LOG2[width] << 2) | 1]) + value.to_bytes(width, "little")


def clock(ns16, shift):
    return bytes([(shift << 2) | 2]) + ns16.to_bytes(2, "little")


def extra(arg):
    return bytes([(arg << 2) | 3])


# Serial, as Linux's 8250 driver and evmm's guest runtime program it.
init = wr(1, 0) + wr(3, 0x80) + wr(0, 1) + wr(1, 0) + wr(3, 0x03) + wr(2, 0xC7) + wr(4, 0x0B) + wr(1, 0x0F)
seed("serial", "init_and_print", init + b"".join(wr(0, c) for c in b"hello\n") + rd(5) + rd(2) + rd(2))
seed("serial", "input", init + extra(7) + b"abcdefgh" + rd(2) + rd(5) + rd(0) * 9 + rd(5) + rd(6))
seed("serial", "loopback", init + wr(4, 0x1F) + rd(6) + wr(0, 0x55) + wr(0, 0xAA) + rd(5) + rd(0) + rd(0)
     + wr(4, 0x0B) + rd(6) + b"".join(wr(0, i) for i in range(70)))
seed("serial", "fifo_overrun", init + wr(4, 0x13) + b"".join(wr(0, i) for i in range(66)) + rd(5) + rd(2)
     + wr(2, 0x06) + rd(2) + wr(2, 0x00) + extra(3) + b"xyzw")
seed("serial", "bad_widths", rd(0, 2) + wr(0, 0x4142, 2) + rd(4, 4) + wr(5, 1) + wr(6, 1) + rd(7, 8) + wr(7, 0x99)
     + rd(7) + rd(8) + wr(9, 1))

# RTC: 4 bytes of wall time, then accesses at 0x70/0x71.
def cmos_rd(index):
    return wr(0, index) + rd(1)


def cmos_wr(index, value):
    return wr(0, index) + wr(1, value)


now = struct.pack("<I", 1_700_000_000)
seed("rtc", "read_clock", now + b"".join(cmos_rd(i) for i in (0x0A, 0, 2, 4, 6, 7, 8, 9, 0x32, 0x0B, 0x0D))
     + clock(1000, 20) + cmos_rd(0))
seed("rtc", "set_time_bcd", now + cmos_wr(0x0B, 0x82) + cmos_wr(0, 0x59) + cmos_wr(2, 0x59) + cmos_wr(4, 0x23)
     + cmos_wr(7, 0x31) + cmos_wr(8, 0x12) + cmos_wr(9, 0x99) + cmos_wr(0x32, 0x20) + cmos_wr(0x0B, 0x02)
     + clock(2000, 20) + cmos_rd(0) + cmos_rd(7) + cmos_rd(9))
seed("rtc", "binary_12h", now + cmos_wr(0x0B, 0x04) + cmos_rd(4) + cmos_wr(4, 0x8B) + cmos_rd(4) + cmos_rd(6))
seed("rtc", "periodic_irq", now + cmos_wr(0x0A, 0x26) + cmos_wr(0x0B, 0x42) + clock(5000, 10) + extra(0)
     + cmos_rd(0x0C) + clock(5000, 10) + extra(0) + cmos_rd(0x0C))
seed("rtc", "alarm_update", now + cmos_wr(1, 0xFF) + cmos_wr(3, 0xFF) + cmos_wr(5, 0xFF) + cmos_wr(0x0B, 0x32)
     + clock(1000, 20) + extra(0) + cmos_rd(0x0C) + clock(1, 36) + cmos_rd(0x0C))
seed("rtc", "nvram_and_bad", now + cmos_wr(0x40, 0x12) + cmos_rd(0x40) + cmos_wr(0x0C, 1) + cmos_wr(0x0D, 1)
     + rd(0) + rd(0, 2) + wr(0, 0x8f0f, 2) + wr(0, 0x8F) + rd(1))

# ACPI PM at 0x600: one byte of setup (bit 0: a sleep handler), then accesses.
seed("acpi_pm", "timer", b"\0" + rd(8, 4) + clock(1000, 20) + rd(8, 4) + rd(8, 2) + rd(10, 1) + rd(11, 1))
seed("acpi_pm", "sci_pwrbtn", b"\0" + wr(2, 0x0101, 2) + extra(0) + b"\x00\x01" + rd(0, 4) + wr(0, 0x0100, 2)
     + rd(0, 4) + clock(3000, 20) + extra(1) + rd(0, 4) + wr(0, 1, 2))
seed("acpi_pm", "s5", b"\0" + rd(4, 2) + wr(4, 0x2001, 2))
seed("acpi_pm", "s3_handler", b"\1" + wr(4, 0x0400, 2) + wr(5, 0x24) + rd(4, 2))
seed("acpi_pm", "bad", b"\0" + rd(6, 2) + rd(4, 4) + wr(8, 0, 4) + rd(0, 8) + wr(12, 1) + rd(5, 2))

# fw_cfg at 0x510: one byte of setup (bit 0: DMA), then accesses.
def select(key):
    return wr(0, key, 2)


seed("fw_cfg", "signature", b"\0" + select(0) + rd(1) * 5 + select(1) + rd(0) * 4 + rd(0, 2))
seed("fw_cfg", "file_dir", b"\0" + select(0x19) + rd(1) * 140 + select(0x20) + rd(1) * 26 + select(0x4005)
     + rd(1) * 2 + select(0x1234) + rd(1) + wr(1, 7))
seed("fw_cfg", "dma", b"\1" + rd(4, 8) + rd(8, 4) + clock(0x100, 0) + (0x0019000A).to_bytes(4, "little")
     + (64).to_bytes(2, "little") + (0x200).to_bytes(2, "little") + wr(4, 0, 4) + wr(8, 0x00010000, 4)
     + rd(1) * 4)
seed("fw_cfg", "dma_skip_select", b"\1" + clock(0x300, 0) + (0x00200008 | 4).to_bytes(4, "little")
     + (8).to_bytes(2, "little") + (0).to_bytes(2, "little") + wr(4, 0x0003000000000000, 8) + rd(0) * 4
     + extra(3) + (0x400).to_bytes(2, "little") + b"\x00\x00\x00\x02" + wr(8, 0x00040000, 4))

# --- x86 -------------------------------------------------------------------------------------------

insns = {
    "int3": b"\xcc", "int80": b"\xcd\x80", "clac": b"\x0f\x01\xca", "stac": b"\x0f\x01\xcb", "fwait": b"\x9b",
    "rdpid": b"\xf3\x0f\xc7\xf8", "rdpid_r9": b"\xf3\x41\x0f\xc7\xf9", "popcnt64": b"\xf3\x48\x0f\xb8\xc3",
    "lzcnt16": b"\x66\xf3\x0f\xbd\xfe", "tzcnt_r11": b"\xf3\x4d\x0f\xbc\xcb", "prefixed": b"\x2e\x3e\xf3\x0f\xb8\xc1",
    "unsupported": b"\x0f\xae\xf0", "truncated": b"\xf3\x0f",
    "int1": b"\xf1", "popcnt_mem": b"\xf3\x0f\xb8\x44\x9e\x10", "lzcnt_mem16": b"\x67\x66\xf3\x0f\xbd\x07",
    "cmpxchg8b": b"\xf0\x0f\xc7\x0f", "cmpxchg16b": b"\xf0\x48\x0f\xc7\x4f\x10", "clflush": b"\x0f\xae\x3f",
    "clflushopt": b"\x66\x0f\xae\x3f", "clwb": b"\x66\x0f\xae\x37", "invpcid": b"\x66\x0f\x38\x82\x07",
    "riprel": b"\xf3\x0f\xb8\x05\x00\x10\x00\x00", "fs_sib": b"\x64\xf3\x43\x0f\xb8\x44\xcd\x08",
    "lock_bad": b"\xf0\xf3\x0f\xb8\xc3",
}
for name, b in insns.items():
    seed("x86_decode", name + "_64", b"\2" + b + b"\x90")
    seed("x86_decode", name + "_32", b"\1" + b)
seed("x86_decode", "long", b"\2" + b"\x66" * 16 + b"\xcc")

# assist: mode, length, bytes, then patches (p, place, value).
def patch_cpu(offset, value):
    return bytes([0]) + offset.to_bytes(2, "little") + value.to_bytes(8, "little")


def patch_mem(addr, value):
    return bytes([1]) + addr.to_bytes(2, "little") + value.to_bytes(8, "little")


for mode, mname in enumerate(["long", "prot", "real", "compat"]):
    for name in ("int3", "int80", "clac", "rdpid", "popcnt64", "lzcnt16", "tzcnt_r11", "int1", "popcnt_mem",
                 "cmpxchg8b", "cmpxchg16b", "clflush", "clwb", "invpcid", "riprel"):
        b = insns[name]
        seed("assist", f"{name}_{mname}", bytes([mode, len(b)]) + b)
# rsp (kvm_regs offset 56) near the bottom of memory, and a gate that is not present.
seed("assist", "int3_low_stack", bytes([0, 1]) + b"\xcc" + patch_cpu(56, 0x10))
seed("assist", "int80_not_present", bytes([0, 2]) + b"\xcd\x80" + patch_mem(0x2000 + 0x80 * 16, 0x0000_0E00_0008_0000))
# The replayed SIMD kinds, with the vector state on (mode bit 2) and rdi (kvm_regs offset 40) at
# 0x4000; one patch of the XSAVE area (p = 2) puts random bytes in XMM1.
def patch_fpu(offset, value):
    return bytes([2]) + offset.to_bytes(2, "little") + value.to_bytes(8, "little")


simd = {
    "movdqu_load": b"\xf3\x0f\x6f\x0f", "movdqa_store": b"\x66\x0f\x7f\x17", "pxor": b"\x66\x0f\xef\x0f",
    "pshufb": b"\x66\x0f\x38\x00\x07", "vmovdqu_xmm": b"\xc5\xfa\x6f\x07", "vmovdqu_ymm_store": b"\xc5\xfe\x7f\x17",
    "vpxor_ymm": b"\xc5\xed\xef\x0f", "vmovdqu64_zmm": b"\x62\xf1\xfe\x48\x6f\x0f",
    "vmovdqu8_masked_store": b"\x62\xf1\x7f\x4a\x7f\x0f", "rorx": b"\xc4\xe3\xfb\xf0\x07\x07",
    "pclmulqdq": b"\x66\x0f\x3a\x44\x0f\x11", "maskmovdqu": b"\x66\x0f\xf7\xca",
}
for name, b in simd.items():
    seed("assist", f"simd_{name}", bytes([4, len(b)]) + b + patch_cpu(40, 0x4000) + patch_fpu(176, 0x0123456789abcdef))


# --- Xen hypercalls (targets/xen_hypercall_fuzz.cpp) ----------------------------------------------

def xmem(addr, data):
    return b"\0" + addr.to_bytes(3, "little") + bytes([len(data)]) + data


def hcall(nr, *args):
    args = list(args) + [0] * (5 - len(args))
    return b"\1" + bytes([nr]) + b"".join((a & 0xFFFFFFFF).to_bytes(4, "little") for a in args)


def xmsr(value):
    return b"\2" + value.to_bytes(4, "little")


ARG, SHARED, VINFO = 0x10000, 0x20000, 0x21000
HV_CONSOLE, HV_VERSION, HV_MEMORY, HV_SCHED, HV_EVTCHN, HV_HVM, HV_VCPU, HV_TIMER = 18, 17, 12, 29, 32, 34, 24, 15
physmap64 = struct.pack("<HHIQQ", 0x7FF0, 0, 0, 0, SHARED >> 12)   # DOMID_SELF, shared_info, idx 0
physmap32 = struct.pack("<HHIII", 0x7FF0, 0, 0, 0, SHARED >> 12)
callback = struct.pack("<HHIQ", 0x7FF0, 0, 0, (2 << 56) | 0xF3)     # HVM_PARAM_CALLBACK_IRQ, vector
vinfo = struct.pack("<QII", VINFO >> 12, 64, 0)
for width, physmap in ((0, physmap64), (1, physmap32)):
    setup = (xmsr(0x5000) + xmem(ARG, physmap) + hcall(HV_MEMORY, 7, ARG) + xmem(ARG + 0x100, callback)
             + hcall(HV_HVM, 0, ARG + 0x100) + xmem(ARG + 0x200, vinfo) + hcall(HV_VCPU, 10, 0, ARG + 0x200))
    seed("xen_hypercall", f"console_{width}", bytes([width]) + xmem(0x1FF8, b"hello, xen\n")
         + hcall(HV_CONSOLE, 0, 11, 0x1FF8) + hcall(HV_CONSOLE, 0, 0xFFFFFFFF, 0x800000 - 8) + hcall(HV_VERSION, 0)
         + hcall(HV_VERSION, 1, ARG) + hcall(HV_VERSION, 6, ARG) + hcall(99))
    seed("xen_hypercall", f"ipi_send_{width}", bytes([width]) + setup + xmem(ARG, struct.pack("<II", 0, 0))
         + hcall(HV_EVTCHN, 7, ARG) + xmem(ARG + 0x300, struct.pack("<I", 1)) + hcall(HV_EVTCHN, 4, ARG + 0x300)
         + hcall(HV_EVTCHN, 9, ARG + 0x300) + hcall(HV_EVTCHN, 5, ARG + 0x300) + hcall(HV_EVTCHN, 3, ARG + 0x300))
    seed("xen_hypercall", f"loopback_virq_{width}", bytes([width | 2]) + setup
         + xmem(ARG, struct.pack("<HHI", 0x7FF0, 0x7FF0, 0)) + hcall(HV_EVTCHN, 6, ARG)
         + xmem(ARG + 0x40, struct.pack("<HII", 0x7FF0, 1, 0)) + hcall(HV_EVTCHN, 0, ARG + 0x40)
         + xmem(ARG + 0x80, struct.pack("<III", 0, 1, 0)) + hcall(HV_EVTCHN, 1, ARG + 0x80)
         + xmem(ARG + 0xC0, struct.pack("<QI", 10**6, 1)) + hcall(HV_VCPU, 8, 1, ARG + 0xC0) + hcall(HV_TIMER, 5, 0))
    seed("xen_hypercall", f"poll_block_shutdown_{width}", bytes([width]) + setup
         + xmem(0x12000, struct.pack("<I", 1))
         + xmem(ARG, struct.pack("<QIIQ", 0x12000, 1, 0, 1000) if width == 0 else struct.pack("<IIQ", 0x12000, 1, 1000))
         + hcall(HV_SCHED, 3, ARG) + hcall(HV_SCHED, 1) + xmem(ARG + 0x20, struct.pack("<I", 2))
         + hcall(HV_SCHED, 2, ARG + 0x20))


# --- GDB remote protocol (targets/gdb_packet_fuzz.cpp) ------------------------------------------

def gdb_frame(data):
    esc = bytearray()
    for b in data:
        if b in b"$#}*":
            esc += bytes([0x7D, b ^ 0x20])
        else:
            esc.append(b)
    return b"$" + bytes(esc) + b"#" + b"%02x" % (sum(esc) % 256)


# A session as gdb 13 opens one, then the commands the stub knows, malformed ones and framing noise.
GDB_SESSION = [b"qSupported:multiprocess+;swbreak+;hwbreak+;qRelocInsn+;fork-events+;vContSupported+",
               b"vMustReplyEmpty", b"Hg0", b"qTStatus", b"?", b"qfThreadInfo", b"qsThreadInfo", b"qAttached",
               b"Hc-1", b"qC", b"g", b"m1000,8", b"qOffsets", b"T2", b"p10", b"vCont?"]
seed("gdb_packet", "session", b"\x07" + b"+".join(gdb_frame(p) for p in GDB_SESSION))
seed("gdb_packet", "memory", b"\x03" + b"".join(gdb_frame(p) for p in [
    b"M1000,4:01020304", b"X1004,4:" + bytes([0x7D ^ 0x20 ^ 0x20, 0x24, 0x23, 0x00]), b"X0,0:", b"m1ffc,8", b"mzz,1"]))
seed("gdb_packet", "breakpoints", b"\x10" + b"".join(gdb_frame(p) for p in [
    b"Z0,1234,1", b"Z1,1300,1", b"Z2,1400,4", b"Z3,1500,8", b"Z4,1600,2", b"z0,1234,1", b"z2,1400,4",
    b"vCont;s:1;c", b"c", b"s", b"D", b"k"]))
seed("gdb_packet", "registers", b"\x40" + gdb_frame(b"G" + b"00" * 536) + gdb_frame(b"P10=efbeadde00000000"))
seed("gdb_packet", "framing", b"\x01" + b"+-\x03xx$g#00$g#zz$$?#3f}" + gdb_frame(b"qC")[:-1] + b"$" + b"a" * 64)


# --- DHCP (targets/dhcp_fuzz.cpp): Ethernet frames as Linux's ipconfig sends them -----------------

def ip_checksum(h):
    s = sum(struct.unpack("!%dH" % (len(h) // 2), h))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def dhcp_frame(msg_type, opts=b"", ciaddr=b"\0" * 4, sport=68, dport=67, frag=0, ethertype=0x0800):
    mac = bytes([0x52, 0x54, 0, 0x12, 0x34, 0x56])
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, 0x1234ABCD, 0, 0x8000, ciaddr, b"\0" * 4,
                        b"\0" * 4, b"\0" * 4, mac, b"", b"")
    bootp += bytes([99, 130, 83, 99]) + (bytes([53, 1, msg_type]) if msg_type else b"") + opts + b"\xff"
    bootp += b"\0" * max(0, 300 - len(bootp))
    udp = struct.pack("!HHHH", sport, dport, 8 + len(bootp), 0) + bootp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, frag, 64, 17, 0, b"\0" * 4, b"\xff" * 4)
    ip = ip[:10] + struct.pack("!H", ip_checksum(ip)) + ip[12:]
    return b"\xff" * 6 + mac + struct.pack("!H", ethertype) + ip + udp


LEASE = bytes([10, 0, 2, 15])
SERVER = bytes([10, 0, 2, 2])
seed("dhcp", "discover", dhcp_frame(1, bytes([55, 4, 1, 3, 12, 15])))
seed("dhcp", "request", dhcp_frame(3, bytes([54, 4]) + SERVER + bytes([50, 4]) + LEASE))
seed("dhcp", "request_other_address", dhcp_frame(3, bytes([50, 4, 10, 0, 2, 99])))
seed("dhcp", "renew", dhcp_frame(3, ciaddr=LEASE))
seed("dhcp", "release", dhcp_frame(7))
seed("dhcp", "no_type", dhcp_frame(0))
seed("dhcp", "option_past_end", dhcp_frame(1)[:-60] + bytes([12, 200]))
seed("dhcp", "fragment", dhcp_frame(1, frag=0x2000))
seed("dhcp", "arp", dhcp_frame(1, ethertype=0x0806))
seed("dhcp", "truncated", dhcp_frame(1)[:100])


# --- virtio-blk requests (targets/virtio_blk_fuzz.cpp) --------------------------------------------

def blk(flags, capacity, seg_max, descs, memory):
    """descs: (writable, addr, len); memory: bytes from address 0 (the header at 0x100, say)."""
    out = struct.pack("<BHBB", flags, capacity, seg_max, len(descs))
    for w, addr, ln in descs:
        out += struct.pack("<BHH", w, addr, ln)
    return out + memory


def blk_mem(*chunks):
    m = bytearray(0x400)
    for addr, data in chunks:
        m[addr:addr + len(data)] = data
    return bytes(m)


def blk_hdr(t, sector):
    return struct.pack("<IIQ", t, 0, sector)


def blk_range(sector, n, flags):
    return struct.pack("<QII", sector, n, flags)


HDR, DATA, ST = 0x100, 0x1000, 0x200
seed("virtio_blk", "read", blk(0, 64, 8, [(0, HDR, 16), (1, DATA, 1024), (1, ST, 1)], blk_mem((HDR, blk_hdr(0, 3)))))
seed("virtio_blk", "write_split", blk(0, 64, 8, [(0, HDR, 8), (0, HDR + 8, 520), (1, ST, 1)], blk_mem((HDR, blk_hdr(1, 0)))))
seed("virtio_blk", "write_ro", blk(1, 64, 8, [(0, HDR, 16), (0, DATA, 512), (1, ST, 1)], blk_mem((HDR, blk_hdr(1, 0)))))
seed("virtio_blk", "flush", blk(0, 64, 8, [(0, HDR, 16), (1, ST, 1)], blk_mem((HDR, blk_hdr(4, 0)))))
seed("virtio_blk", "get_id", blk(0, 64, 8, [(0, HDR, 16), (1, DATA, 20), (1, ST, 1)], blk_mem((HDR, blk_hdr(8, 0)))))
seed("virtio_blk", "discard", blk(6, 64, 8, [(0, HDR, 16), (0, 0x300, 32), (1, ST, 1)],
                                  blk_mem((HDR, blk_hdr(11, 0)), (0x300, blk_range(0, 8, 0) + blk_range(32, 8, 0)))))
seed("virtio_blk", "write_zeroes", blk(6, 64, 8, [(0, HDR, 16), (0, 0x300, 16), (1, ST, 1)],
                                       blk_mem((HDR, blk_hdr(13, 0)), (0x300, blk_range(8, 8, 1)))))
seed("virtio_blk", "out_of_range", blk(0, 4, 8, [(0, HDR, 16), (1, DATA, 4096), (1, ST, 1)], blk_mem((HDR, blk_hdr(0, 2)))))
seed("virtio_blk", "no_status", blk(0, 64, 8, [(0, HDR, 16)], blk_mem((HDR, blk_hdr(4, 0)))))


# --- the control API (targets/api_http_fuzz.cpp): byte 0 picks the limits, then HTTP requests ----


def http(method, path, body=""):
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n" + body).encode()


GO_SDK = [
    http("GET", "/machine-config"),
    http("PUT", "/logger", '{"log_path":"/tmp/fc.log","level":"Debug","show_level":true,"show_log_origin":false}'),
    http("PUT", "/metrics", '{"metrics_path":"/tmp/fc.metrics"}'),
    http("PUT", "/machine-config", '{"vcpu_count":2,"mem_size_mib":256,"smt":false,"track_dirty_pages":false}'),
    http("PUT", "/boot-source", '{"kernel_image_path":"/k","boot_args":"console=ttyS0 reboot=k panic=1"}'),
    http("PUT", "/drives/data", '{"drive_id":"data","path_on_host":"/d","is_root_device":false,"is_read_only":true}'),
    http("PUT", "/drives/root_drive", '{"drive_id":"root_drive","path_on_host":"/r","is_root_device":true}'),
    http("PUT", "/network-interfaces/1", '{"iface_id":"1","host_dev_name":"tap0","guest_mac":"AA:FC:00:00:00:01"}'),
    http("PUT", "/vsock", '{"guest_cid":3,"uds_path":"/v.sock"}'),
    http("PUT", "/entropy", "{}"),
    http("PUT", "/actions", '{"action_type":"InstanceStart"}'),
    http("PUT", "/actions", '{"action_type":"InstanceStart"}'),
    http("PATCH", "/vm", '{"state":"Paused"}'),
    http("GET", "/"),
    http("GET", "/vm/config"),
]
seed("api_http", "go_sdk", b"\0" + b"".join(GO_SDK))
seed("api_http", "small_limits", b"\1" + b"".join(GO_SDK[:4]))
seed("api_http", "config_file", b"\0" + http("PUT", "/boot-source", '{"boot-source":{"kernel_image_path":"/k"},'
                                               '"machine-config":{"vcpu_count":1,"mem_size_mib":64},"drives":[]}'))
seed("api_http", "bad_requests", b"\0" + http("PATCH", "/machine-config", "{}") + http("DELETE", "/x/y")
     + http("PUT", "/drives/a", '{"drive_id":"b"}') + b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
seed("api_http", "bare_lf", b"\0GET /version HTTP/1.0\nConnection: keep-alive\n\nPUT /actions HTTP/1.1\nContent-Length: 2\n\n{}")


def main():
    for target, files in corpus.items():
        d = os.path.join(OUT, target)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
    total = sum(len(b) for files in corpus.values() for b in files.values())
    print(f"wrote {sum(len(f) for f in corpus.values())} seeds, {total} bytes, under {OUT}")


main()
