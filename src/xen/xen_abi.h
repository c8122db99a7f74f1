// The Xen public ABI as evmm uses it: every struct and constant comes from Debian's libxen-dev headers.
//
// Guest width. xen.h on this (x86-64) host describes a 64-bit guest's shared_info: xen_ulong_t is
// unsigned long, 64 bits. A guest that runs in 32-bit mode sees a layout with 32-bit words instead:
// evtchn_pending_sel at offset 4 of vcpu_info, and 32 words each of evtchn_pending and evtchn_mask.
// Xen itself calls that its "compat" layout (has_32bit_shinfo); the headers give it as struct
// shared_info_x86_32 / vcpu_info_x86_32 in xen/foreign/x86_32.h, generated from arch-x86/xen-x86_32.h
// by Xen's mkheader.py. That is the 32-bit layout used here. (xen/foreign/x86_64.h is not usable from
// strict C++20: its __align8__ expands to FIXME without GNU extensions; native xen.h is that layout.)
#pragma once

#include <cstddef>
#include <cstdint>

#if __XEN_INTERFACE_VERSION__ != 0x00040e00
#error "build with -D__XEN_INTERFACE_VERSION__=0x00040e00 (libevmm's compile definitions)"
#endif
#include <xen/errno.h>
#include <xen/event_channel.h>
#include <xen/foreign/x86_32.h>
#include <xen/xen.h>

namespace evmm {

enum class XenWidth : uint8_t { Bits64, Bits32 };

// Where the 2-level event channel fields sit for one guest width.
struct Evtchn2lLayout {
  uint32_t word_bits;         // bits per evtchn_pending word, and per evtchn_pending_sel
  uint32_t max_ports;         // word_bits * word_bits: EVTCHN_2L_NR_CHANNELS for this width
  size_t shared_info_size;    // bytes of shared_info that must be reachable
  size_t pending_offset;      // shared_info.evtchn_pending
  size_t mask_offset;         // shared_info.evtchn_mask
  size_t vcpu_info_size;      // bytes of vcpu_info that must be reachable
  size_t upcall_pending_offset;  // vcpu_info.evtchn_upcall_pending (a byte)
  size_t pending_sel_offset;  // vcpu_info.evtchn_pending_sel (one word)
  uint32_t legacy_vcpus;      // vcpu_info slots inside shared_info (XEN_LEGACY_MAX_VCPUS)
};

inline constexpr Evtchn2lLayout kEvtchn2lLayout64{
    .word_bits = sizeof(xen_ulong_t) * 8,
    .max_ports = EVTCHN_2L_NR_CHANNELS,
    .shared_info_size = sizeof(shared_info),
    .pending_offset = offsetof(shared_info, evtchn_pending),
    .mask_offset = offsetof(shared_info, evtchn_mask),
    .vcpu_info_size = sizeof(vcpu_info),
    .upcall_pending_offset = offsetof(vcpu_info, evtchn_upcall_pending),
    .pending_sel_offset = offsetof(vcpu_info, evtchn_pending_sel),
    .legacy_vcpus = XEN_LEGACY_MAX_VCPUS,
};

// EVTCHN_2L_NR_CHANNELS is written in terms of the host's xen_ulong_t; for 32-bit words it is 32*32.
inline constexpr Evtchn2lLayout kEvtchn2lLayout32{
    .word_bits = sizeof(uint32_t) * 8,
    .max_ports = sizeof(uint32_t) * sizeof(uint32_t) * 64,
    .shared_info_size = sizeof(shared_info_x86_32),
    .pending_offset = offsetof(shared_info_x86_32, evtchn_pending),
    .mask_offset = offsetof(shared_info_x86_32, evtchn_mask),
    .vcpu_info_size = sizeof(vcpu_info_x86_32),
    .upcall_pending_offset = offsetof(vcpu_info_x86_32, evtchn_upcall_pending),
    .pending_sel_offset = offsetof(vcpu_info_x86_32, evtchn_pending_sel),
    .legacy_vcpus = XEN_LEGACY_MAX_VCPUS_X86_32,
};

constexpr const Evtchn2lLayout& evtchn_2l_layout(XenWidth w) {
  return w == XenWidth::Bits64 ? kEvtchn2lLayout64 : kEvtchn2lLayout32;
}

static_assert(sizeof(xen_ulong_t) == 8, "xen.h must describe the 64-bit layout on this host");
static_assert(kEvtchn2lLayout64.max_ports == 4096 && kEvtchn2lLayout32.max_ports == 1024);
static_assert(sizeof(shared_info::evtchn_pending) * 8 == kEvtchn2lLayout64.max_ports);
static_assert(sizeof(shared_info_x86_32::evtchn_pending) * 8 == kEvtchn2lLayout32.max_ports);
static_assert(sizeof(vcpu_info::evtchn_pending_sel) == 8 && sizeof(vcpu_info_x86_32::evtchn_pending_sel) == 4);

}  // namespace evmm
