/* COM1, a 16550A UART (National Semiconductor PC16550D datasheet). Output is polled; input is polled or
 * interrupt-driven through the IOAPIC. Each register access is a VM exit, so transmit fills the 16-byte
 * FIFO per poll of LSR instead of polling before every byte. Lines end in '\n' only, no '\r'. */
#include "internal.h"

#define COM1 0x3f8
enum uart_reg { THR = 0, RBR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5 };
#define LSR_DR 0x01   /* receive data ready */
#define LSR_THRE 0x20 /* transmit holding register (and FIFO) empty */
#define LCR_DLAB 0x80
#define LCR_8N1 0x03
#define FCR_ENABLE_CLEAR 0x07
#define MCR_DTR_RTS_OUT2 0x0b /* OUT2 gates the UART's interrupt line on PC boards */
#define IER_RX 0x01
#define IIR_FIFO_ENABLED 0xc0 /* both bits read 1 only on a 16550A with working FIFOs */
#define COM1_GSI 4

static size_t tx_burst = 1;
static volatile char rx_ring[256];
static volatile uint8_t rx_head, rx_tail;

void rt_serial_init(void)
{
    outb(COM1 + IER, 0);
    outb(COM1 + LCR, LCR_DLAB);
    outb(COM1 + DLL, 1); /* 115200 baud */
    outb(COM1 + DLM, 0);
    outb(COM1 + LCR, LCR_8N1);
    outb(COM1 + FCR, FCR_ENABLE_CLEAR);
    outb(COM1 + MCR, MCR_DTR_RTS_OUT2);
    /* With a FIFO, THRE means all 16 bytes are free; an older UART takes one byte per THRE. */
    tx_burst = (inb(COM1 + IIR) & IIR_FIFO_ENABLED) == IIR_FIFO_ENABLED ? 16 : 1;
}

static void wait_thre(void)
{
    /* Bounded: a UART that never drains must not hang the guest silently forever. */
    for (int i = 0; i < 100000; i++)
        if (inb(COM1 + LSR) & LSR_THRE)
            return;
}

void rt_serial_write(const char *s, size_t n)
{
    while (n) {
        wait_thre();
        /* One rep outsb per burst: KVM gathers it into a single exit (kvm_run io.count > 1). */
        size_t chunk = n < tx_burst ? n : tx_burst, left = chunk;
        __asm__ volatile("rep outsb" : "+S"(s), "+c"(left) : "d"((uint16_t)(COM1 + THR)) : "memory");
        n -= chunk;
    }
}

bool rt_serial_poll_char(char *c)
{
    if (!(inb(COM1 + LSR) & LSR_DR))
        return false;
    *c = (char)inb(COM1 + RBR);
    return true;
}

static void serial_irq(struct rt_frame *f)
{
    (void)f;
    char c;
    while (rt_serial_poll_char(&c)) {
        uint8_t next = (uint8_t)(rx_head + 1);
        if (next != rx_tail) { /* drop on overflow rather than overwrite unread input */
            rx_ring[rx_head] = c;
            rx_head = next;
        }
    }
}

void rt_serial_irq_enable(void)
{
    rt_set_irq_handler(RT_VEC_SERIAL, serial_irq);
    rt_ioapic_route(COM1_GSI, RT_VEC_SERIAL, rt_lapic_id());
    outb(COM1 + IER, IER_RX);
}

void rt_serial_irq_disable(void) { outb(COM1 + IER, 0); }

bool rt_serial_irq_getc(char *c)
{
    if (rx_tail == rx_head)
        return false;
    *c = rx_ring[rx_tail];
    rx_tail = (uint8_t)(rx_tail + 1);
    return true;
}
