/* Multiboot v1 header (Multiboot 0.6.96 s3.1), linked only into the multiboot images. Built twice: plain
 * for the ELF image, and with RT_MB_AOUT for the flat binary, whose loader needs the address fields
 * (flags bit 16, the "a.out kludge") because a flat file carries no program headers. */
#define MB_MAGIC 0x1badb002
#define MB_PAGE_ALIGN (1 << 0) /* modules on 4 KiB boundaries */
#define MB_MEMORY_INFO (1 << 1) /* mem_* and mmap_* in the info */
#define MB_AOUT_KLUDGE (1 << 16)

#ifdef RT_MB_AOUT
#define MB_FLAGS (MB_PAGE_ALIGN | MB_MEMORY_INFO | MB_AOUT_KLUDGE)
#define MB_FORMAT "mb.bin"
#else
#define MB_FLAGS (MB_PAGE_ALIGN | MB_MEMORY_INFO)
#define MB_FORMAT "mb.elf"
#endif

    .section .multiboot, "a"
    .balign 4
mb_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
#ifdef RT_MB_AOUT
    .long mb_header          /* header_addr */
    .long _image_start       /* load_addr: the file's first byte */
    .long _edata             /* load_end_addr */
    .long _end               /* bss_end_addr: the loader zeroes up to here */
    .long rt_entry_multiboot /* entry_addr */
#endif

    .section .rodata
    .globl rt_image_format
rt_image_format:
    .asciz MB_FORMAT

    .section .note.GNU-stack, "", @progbits
