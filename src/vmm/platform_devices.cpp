#include "vmm/platform_devices.h"

#include <cstring>

#include "base/log.h"
#include "boot/boot.h"
#include "devices/acpi_pm.h"
#include "devices/debug_console.h"
#include "devices/debug_exit.h"
#include "devices/doorbell.h"
#include "devices/fw_cfg.h"
#include "devices/i8042.h"
#include "devices/rtc.h"
#include "devices/rtc_timer.h"
#include "devices/serial.h"
#include "event/eventfd_interrupt_line.h"
#include "event/interrupt_announcer.h"
#include "event/kvm_irq_line.h"
#include "memory/layout.h"
#include "sandbox/seccomp.h"
#include "vmm/console.h"

namespace evmm {

using namespace platform;

// Stops the loop first: no resample is processed while the devices and lines go away.
PlatformDevices::~PlatformDevices() {
  if (loop_) loop_->stop();
}

// The lines are level (the devices hold them until serviced), so they need irqfd with resample; a
// host without it keeps KVM_IRQ_LINE. A level irqfd also suits a pin the guest programs as edge:
// the kernel lowers the line at EOI and the re-assert is a new edge.
Result<std::shared_ptr<InterruptLine>> PlatformDevices::interrupt_line(uint32_t gsi, EventFdInterruptLine::Mode mode) {
  std::shared_ptr<InterruptLine> line;
  if (irqfd_) {
    auto fd_line = TRY(EventFdInterruptLine::create(*vm_, gsi, mode));
    TRY(loop_->add(fd_line));
    line = fd_line;
  } else {
    line = std::make_shared<KvmIrqLine>(*vm_, gsi);
  }
  if (notifier_) return std::make_shared<AnnouncingInterruptLine>(line, *notifier_);
  return line;
}

Result<void> PlatformDevices::create_lines(const VmFd& vm, InterruptAnnouncer* notifier, bool seccomp) {
  loop_ = TRY(EventLoop::create());
  vm_ = &vm;
  notifier_ = notifier;
  irqfd_ = vm.check_extension(KVM_CAP_IRQFD) > 0 && vm.check_extension(KVM_CAP_IRQFD_RESAMPLE) > 0;
  if (!irqfd_) LOG_INFO("no KVM_CAP_IRQFD_RESAMPLE: device interrupts use KVM_IRQ_LINE");
  using Mode = EventFdInterruptLine::Mode;
  com1_irq_ = TRY(interrupt_line(kCom1Irq, Mode::Level));
  rtc_irq_ = TRY(interrupt_line(kRtcIrq, Mode::Level));
  sci_irq_ = TRY(interrupt_line(kSciIrq, Mode::Level));
  // The doorbell answers with edges, one per ring: a plain irqfd, no resample.
  doorbell_irq_ = TRY(interrupt_line(kDoorbellGsi, Mode::Edge));
  // The loop runs device code a guest drives: it gets the device filter before its first event.
  EventLoop::ThreadSetup sandbox;
  if (seccomp) sandbox = [] { return seccomp::install(seccomp::Role::Device); };
  TRY(loop_->start(std::move(sandbox)));
  return {};
}

Result<std::unique_ptr<PlatformDevices>> PlatformDevices::create(const VmFd& vm, const GuestMemory& mem, IoBus& pio, IoBus& mmio,
                                                 IoEventRegistry& ioevents, VmStopHandler& control, ConsoleOutput& out,
                                                 const VmConfig& cfg, InterruptAnnouncer* notifier) {
  std::unique_ptr<PlatformDevices> d(new PlatformDevices());
  TRY(d->create_lines(vm, notifier, cfg.seccomp && seccomp::supported()));
  ByteSink sink = [&out](std::span<const uint8_t> b) { out.write(b); };
  d->serial_ = std::make_shared<Serial>(*d->com1_irq_, sink);
  d->debugcon_ = std::make_shared<DebugConsole>(sink);
  d->debug_exit_ = std::make_shared<DebugExit>(control);
  d->fw_cfg_ = std::make_shared<FwCfg>();
  d->i8042_ = std::make_shared<I8042>(control);
  d->pm_ = std::make_shared<AcpiPm>(control, *d->sci_irq_, d->clock_);
  d->rtc_ = std::make_shared<Rtc>(*d->rtc_irq_, d->clock_);
  // An RTC alarm sets RTC_STS (ACPI 6.0, 4.8.3.1.1), and the timer fires the RTC's interrupts.
  d->rtc_->set_acpi_pm(d->pm_.get());
  d->rtc_timer_ = TRY(RtcTimer::create(d->rtc_));
  TRY(d->loop_->add(d->rtc_timer_));
  TRY(d->populate_fw_cfg(mem, cfg));

  TRY(pio.insert(kCom1Port, Serial::kRangeLen, d->serial_, "com1"));
  TRY(pio.insert(kDebugConPort, DebugConsole::kRangeLen, d->debugcon_, "debugcon"));
  TRY(pio.insert(kDebugExitPort, DebugExit::kRangeLen, d->debug_exit_, "debug-exit"));
  TRY(pio.insert(kFwCfgPort, FwCfg::kRangeLen, d->fw_cfg_, "fw_cfg"));
  TRY(pio.insert(kI8042DataPort, I8042::kRangeLen, d->i8042_, "i8042"));
  TRY(pio.insert(kRtcPort, Rtc::kRangeLen, d->rtc_, "rtc"));
  TRY(pio.insert(kPm1aEvtPort, AcpiPm::kRangeLen, d->pm_, "acpi-pm"));

  d->doorbell_ = TRY(Doorbell::create(ioevents, *d->doorbell_irq_));
  TRY(d->loop_->add(d->doorbell_));
  TRY(pio.insert(kDoorbellPort, Doorbell::kRangeLen, d->doorbell_, "doorbell"));
  TRY(mmio.insert(kDoorbellMmio, Doorbell::kRangeLen, d->doorbell_, "doorbell"));
  return d;
}

Result<void> PlatformDevices::populate_fw_cfg(const GuestMemory& mem, const VmConfig& cfg) {
  uint64_t low = 0, high = 0;
  for (const auto& r : mem.regions())
    if (r.kind == RegionKind::Ram) (r.start.raw() < layout::kMmioHoleEnd ? low : high) += r.size;
  rtc_->set_memory_size(low, high);

  auto& f = *fw_cfg_;
  TRY(f.add_u16(fw_cfg::kNbCpus, static_cast<uint16_t>(cfg.cpus)));
  TRY(f.add_u16(fw_cfg::kMaxCpus, static_cast<uint16_t>(cfg.cpus)));
  TRY(f.add_u64(fw_cfg::kRamSize, cfg.memory_mib * layout::MiB));
  TRY(f.add_u64(fw_cfg::kMaxRam, mem.end().raw()));
  // etc/e820 in QEMU's layout: packed {u64 address, u64 length, u32 type}, little-endian.
  std::vector<uint8_t> e820;
  for (const auto& e : build_e820(mem)) {
    uint8_t rec[20];
    std::memcpy(rec, &e.addr, 8);
    std::memcpy(rec + 8, &e.size, 8);
    std::memcpy(rec + 16, &e.type, 4);
    e820.insert(e820.end(), rec, rec + 20);
  }
  TRY(f.add_file("etc/e820", std::move(e820)));  // returns the file's key, unused here
  return {};
}

void PlatformDevices::set_rtc_alarm_handler(std::function<void()> handler) { rtc_timer_->set_alarm_handler(std::move(handler)); }

Result<std::unique_ptr<ConsoleInput>> PlatformDevices::attach_console_input(int fd) {
  auto serial = serial_;
  auto in = TRY(ConsoleInput::attach(*loop_, fd, [serial](std::span<const uint8_t> b) { return serial->push_input(b); }));
  serial_->set_rx_space_callback([p = in.get()] { p->notify_space(); });
  return in;
}

}  // namespace evmm
