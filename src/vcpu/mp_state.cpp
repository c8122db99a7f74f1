#include "vcpu/mp_state.h"

#include "kvm/kvm_uapi.h"

namespace evmm {

std::string_view to_string(MpState s) {
  switch (s) {
    case MpState::Runnable: return "runnable";
    case MpState::Halted: return "halted";
    case MpState::Stopped: return "stopped";
    case MpState::Suspended: return "suspended";
  }
  return "?";
}

Result<MpState> mp_state_from_kvm(uint32_t kvm_state) {
  switch (kvm_state) {
    case KVM_MP_STATE_RUNNABLE:
    case KVM_MP_STATE_SIPI_RECEIVED: return MpState::Runnable;
    case KVM_MP_STATE_UNINITIALIZED:
    case KVM_MP_STATE_INIT_RECEIVED: return MpState::Stopped;
    case KVM_MP_STATE_HALTED: return MpState::Halted;
    default: return make_error(EINVAL, "KVM MP state {} has no x86 meaning", kvm_state);
  }
}

Result<uint32_t> mp_state_to_kvm(MpState s) {
  switch (s) {
    case MpState::Runnable: return KVM_MP_STATE_RUNNABLE;
    case MpState::Halted: return KVM_MP_STATE_HALTED;
    case MpState::Stopped: return KVM_MP_STATE_INIT_RECEIVED;
    case MpState::Suspended: break;
  }
  return make_error(EINVAL, "the suspended state is evmm's own, not KVM's");
}

}  // namespace evmm
