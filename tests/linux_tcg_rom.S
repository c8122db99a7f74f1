# The reset ROM of tests/linux_tcg_replay_test.cpp (64 KiB, mapped at 0xF0000): from real mode
# straight to 64-bit mode on the identity page tables (PML4) and GDT (GDT_BASE) evmm's loader wrote,
# then to ENTRY with RSI = BOOT_PARAMS: the state boot/cpu_entry.cpp gives the BSP. The symbols come
# from `as --defsym`.
.code16
.org 0
start:
  cli
  mov $0xF000, %ax
  mov %ax, %ds
  lgdtl gdtdesc
  mov %cr4, %eax
  or $0x20, %eax          # PAE
  mov %eax, %cr4
  mov $PML4, %eax
  mov %eax, %cr3
  mov $0xC0000080, %ecx   # EFER.LME
  rdmsr
  or $0x100, %eax
  wrmsr
  mov %cr0, %eax
  or $0x80000001, %eax    # PG | PE at once: long mode, then a far jump to the 64-bit __BOOT_CS
  mov %eax, %cr0
  ljmpl $0x10, $(0xF0000 + long64)
.code64
long64:
  mov $0x18, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %ss
  mov %ax, %fs
  mov %ax, %gs
  mov $BOOT_PARAMS, %rsi
  mov $ENTRY, %rax
  jmp *%rax
gdtdesc:
  .word 31
  .long GDT_BASE
.org 0xFFF0
.code16
  ljmp $0xF000, $start
.org 0x10000
