"""Terminal EMV kernel: tag dictionary, ODA PKI, and the kernel itself."""
