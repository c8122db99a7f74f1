/* The integration-test guest: each command-line word names an action (see main.c). */
#ifndef TESTPROG_H
#define TESTPROG_H

#include "rt/hw.h"
#include "rt/rt.h"

/* Prints the message (a full line, newline added) and exits through debug-exit with code. */
__attribute__((noreturn, format(printf, 2, 3))) void tp_fail(uint8_t code, const char *fmt, ...);

/* The value of the word being run (word=value), NULL for a bare word. */
extern const char *tp_value;

void action_hello(void);
void action_spin(void);
void action_mem(void);
void action_modules(void);
void action_serial(void);
void action_serial_irq(void);
void action_smp(void);
void action_cpuid(void);
void action_irq(void);
void action_acpi(void);
void action_fwcfg(void);
void action_rtc(void);
void action_assist(void);
void action_assist_force(void);
void action_assist_fault(void);
void action_assist_mem(void);
void action_assist_fpu(void);
void action_badinsn(void);
void action_doorbell(void);
void action_ring3(void);
void action_pvsuspend(void);
void action_s3(void);
void action_virtio(void), action_vqbad(void), action_netarp(void), action_consread(void);
void action_rtc_alarm(void), action_rtc_uip(void), action_rtc_pie(void);

#endif
