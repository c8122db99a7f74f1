// What a device raises: one interrupt input of the platform (an IOAPIC/PIC pin, or an MSI route).
#pragma once

namespace evmm {

class InterruptLine {
 public:
  virtual ~InterruptLine() = default;
  // Edge-triggered: one interrupt.
  virtual void trigger() = 0;
  // Level-triggered: the line stays asserted until set_level(false).
  virtual void set_level(bool asserted) = 0;
};

}  // namespace evmm
