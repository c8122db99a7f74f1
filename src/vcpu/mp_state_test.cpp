#include "vcpu/mp_state.h"

#include <gtest/gtest.h>

#include "kvm/kvm_uapi.h"

namespace evmm {
namespace {

TEST(MpState, KvmStatesMapOntoTheFourStates) {
  EXPECT_EQ(*mp_state_from_kvm(KVM_MP_STATE_RUNNABLE), MpState::Runnable);
  EXPECT_EQ(*mp_state_from_kvm(KVM_MP_STATE_SIPI_RECEIVED), MpState::Runnable);
  EXPECT_EQ(*mp_state_from_kvm(KVM_MP_STATE_UNINITIALIZED), MpState::Stopped);
  EXPECT_EQ(*mp_state_from_kvm(KVM_MP_STATE_INIT_RECEIVED), MpState::Stopped);
  EXPECT_EQ(*mp_state_from_kvm(KVM_MP_STATE_HALTED), MpState::Halted);
  EXPECT_EQ(mp_state_from_kvm(KVM_MP_STATE_CHECK_STOP).error().code(), EINVAL);
  EXPECT_EQ(mp_state_from_kvm(KVM_MP_STATE_SUSPENDED).error().code(), EINVAL);  // arm64's, not x86's
}

TEST(MpState, SuspendedHasNoKvmState) {
  EXPECT_EQ(*mp_state_to_kvm(MpState::Runnable), uint32_t{KVM_MP_STATE_RUNNABLE});
  EXPECT_EQ(*mp_state_to_kvm(MpState::Halted), uint32_t{KVM_MP_STATE_HALTED});
  EXPECT_EQ(*mp_state_to_kvm(MpState::Stopped), uint32_t{KVM_MP_STATE_INIT_RECEIVED});
  EXPECT_EQ(mp_state_to_kvm(MpState::Suspended).error().code(), EINVAL);
  for (auto s : {MpState::Runnable, MpState::Halted, MpState::Stopped}) {
    EXPECT_EQ(*mp_state_from_kvm(*mp_state_to_kvm(s)), s);
  }
}

}  // namespace
}  // namespace evmm
