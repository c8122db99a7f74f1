// __HYPERVISOR_xen_version: the version, build strings and feature bits a guest asks for first.
#include "xen/xen_hvm_internal.h"

namespace evmm {

namespace {

// A fixed-size string field of a Xen struct, NUL-padded.
template <size_t N>
void put_string(char (&dst)[N], std::string_view s) {
  std::memset(dst, 0, N);
  std::memcpy(dst, s.data(), std::min(s.size(), N - 1));
}

}  // namespace

int64_t XenHvm::xen_version(XenCaller& c, uint64_t cmd, uint64_t arg) {
  const auto& va = c.va();
  switch (cmd) {
    case XENVER_version: return (int64_t{cfg_.cpuid.major} << 16) | cfg_.cpuid.minor;
    case XENVER_extraversion: {
      xen_extraversion_t v;
      put_string(v, cfg_.extraversion);
      return va.write_obj(arg, v);
    }
    case XENVER_compile_info: {
      xen_compile_info_t v;
      put_string(v.compiler, "evmm");
      put_string(v.compile_by, "evmm");
      put_string(v.compile_domain, "");
      put_string(v.compile_date, __DATE__);
      return va.write_obj(arg, v);
    }
    case XENVER_capabilities: {
      xen_capabilities_info_t v;
      put_string(v, "hvm-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p");
      return va.write_obj(arg, v);
    }
    case XENVER_changeset: {
      xen_changeset_info_t v;
      put_string(v, "evmm");
      return va.write_obj(arg, v);
    }
    case XENVER_get_features: {
      xen_feature_info_t f;
      if (int r = va.read_obj(arg, &f)) return r;
      if (f.submap_idx >= XENFEAT_NR_SUBMAPS) return -XEN_EINVAL;
      f.submap = (1u << XENFEAT_hvm_callback_vector) | (1u << XENFEAT_hvm_safe_pvclock);
      return va.write_obj(arg, f);
    }
    case XENVER_pagesize: return kXenPage;
    case XENVER_guest_handle: {
      xen_domain_handle_t h{};
      return va.write_obj(arg, h);
    }
    case XENVER_commandline:
    case XENVER_build_id: return -XEN_EPERM;  // Xen's XSM answer to an unprivileged domain
    default: return xen_enosys(counters_->unknown);
  }
}

}  // namespace evmm
