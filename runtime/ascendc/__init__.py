"""AscendC runtime: CPU emulation of the AscendC API (kernel_operator.h), the launcher, host prep."""
