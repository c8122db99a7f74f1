/* The "header" object of a plain ELF image: none at all. Such an image carries neither the PVH note nor a
 * multiboot header, so a loader that knows neither enters it at e_entry (rt_entry_pvh) in 32-bit flat
 * protected mode with EBX = 0, as Xen's domain builder enters hvmloader and evmm enters any plain ELF.
 * Only the name of the format is here, for rt_boot.image_format. */
    .section .rodata
    .globl rt_image_format
rt_image_format:
    .asciz "elf"

    .section .note.GNU-stack, "", @progbits
