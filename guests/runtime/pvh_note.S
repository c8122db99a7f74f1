/* PVH entry note (Xen public/elfnote.h: XEN_ELFNOTE_PHYS32_ENTRY = 18, name "Xen", desc = the 32-bit
 * physical entry address), linked only into the PVH image. The linker puts SHT_NOTE sections in a PT_NOTE
 * segment, where loaders look. */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4  /* namesz */
    .long 4  /* descsz */
    .long 18 /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .long rt_entry_pvh
    /* An empty note (namesz = descsz = type = 0) follows, because QEMU reads the entry of an ELF64 image
     * as 8 bytes (hw/i386/x86.c, read_pvh_start_addr); this keeps the upper 4 bytes zero while every note
     * stays well formed for strict parsers. */
    .long 0, 0, 0

    .section .rodata
    .globl rt_image_format
rt_image_format:
    .asciz "pvh.elf"

    .section .note.GNU-stack, "", @progbits
