// The PC platform's legacy devices, wired to their ports and interrupt lines.
#pragma once

#include <functional>
#include <memory>

#include "base/result.h"
#include "bus/io_bus.h"
#include "devices/clock.h"
#include "devices/vm_stop_handler.h"
#include "event/event_loop.h"
#include "event/eventfd_interrupt_line.h"
#include "event/interrupt_line.h"
#include "kvm/vm_fd.h"
#include "memory/guest_memory.h"
#include "vmm/config.h"

namespace evmm {

class AcpiPm;
class ConsoleInput;
class ConsoleOutput;
class DebugConsole;
class DebugExit;
class Doorbell;
class IoEventRegistry;
class InterruptAnnouncer;
class FwCfg;
class I8042;
class Rtc;
class RtcTimer;
class Serial;

class PlatformDevices {
 public:
  static Result<std::unique_ptr<PlatformDevices>> create(const VmFd& vm, const GuestMemory& mem, IoBus& pio, IoBus& mmio,
                                                 IoEventRegistry& ioevents, VmStopHandler& control, ConsoleOutput& out,
                                                 const VmConfig& cfg, InterruptAnnouncer* notifier = nullptr);
  ~PlatformDevices();

  // Feeds fd (stdin) to COM1 with back-pressure.
  Result<std::unique_ptr<ConsoleInput>> attach_console_input(int fd);

  Serial& serial() { return *serial_; }
  // The ACPI fixed hardware: the VMM's suspend policy hooks in with AcpiPm::set_sleep_handler, and
  // a wake event sets its status (AcpiPm::raise_status(AcpiPm::kWakSts)).
  AcpiPm& pm() { return *pm_; }
  Rtc& rtc() { return *rtc_; }
  // The RTC alarm is a wakeup source. handler runs on the event-loop thread after each alarm the
  // guest enabled (AF while register B's AIE); by then PM1_STS.RTC_STS is set, and the SCI raised
  // if the guest set RTC_EN. Any thread; replaces the previous handler.
  void set_rtc_alarm_handler(std::function<void()> handler);
  // The device event loop; its thread runs from create() until this object is destroyed.
  EventLoop& event_loop() { return *loop_; }
  // A new interrupt line on gsi: an irqfd (with resample for Level) where KVM has it, KVM_IRQ_LINE
  // otherwise; it tells the announcer after each assertion.
  Result<std::shared_ptr<InterruptLine>> interrupt_line(uint32_t gsi, EventFdInterruptLine::Mode mode);

 private:
  PlatformDevices() = default;
  // notifier: told after each assertion, so suspended vCPUs recheck (event/interrupt_announcer.h).
  Result<void> create_lines(const VmFd& vm, InterruptAnnouncer* notifier, bool seccomp);
  Result<void> populate_fw_cfg(const GuestMemory& mem, const VmConfig& cfg);

  const VmFd* vm_ = nullptr;
  InterruptAnnouncer* notifier_ = nullptr;
  bool irqfd_ = false;
  SystemClock clock_;
  // The loop is declared first so that it is destroyed last: ~PlatformDevices stops it before anything else.
  std::unique_ptr<EventLoop> loop_;
  std::shared_ptr<InterruptLine> com1_irq_, rtc_irq_, sci_irq_, doorbell_irq_;
  std::shared_ptr<Serial> serial_;
  std::shared_ptr<DebugConsole> debugcon_;
  std::shared_ptr<DebugExit> debug_exit_;
  std::shared_ptr<FwCfg> fw_cfg_;
  std::shared_ptr<I8042> i8042_;
  std::shared_ptr<AcpiPm> pm_;
  std::shared_ptr<Rtc> rtc_;
  std::shared_ptr<RtcTimer> rtc_timer_;
  std::shared_ptr<Doorbell> doorbell_;
};

}  // namespace evmm
