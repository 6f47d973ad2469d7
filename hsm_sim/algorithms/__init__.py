"""Pure payment-cryptography algorithms: bytes in, bytes out, no I/O, no state.

One short module per algorithm: ``tdes`` and ``aes`` (the block ciphers everything here rests
on, their ECB contexts kept per thread by ``ecb``; ``bits`` holds the shared XOR), ``kcv``
(key check values), ``dukpt`` (ANSI X9.24-1 TDES DUKPT, with ``dukpt_aes``: X9.24-3 AES DUKPT),
``pinblock`` (ISO 9564-1 formats 0, 1, 3 and 4, and PCI PIN translation rules), ``ibm3624``
(IBM 3624 offsets and Visa PVV), ``cvv`` (Visa CVV/CVC, CVV2, iCVV), ``mac`` (ISO 9797-1 retail
MAC, AES and TDES CMAC), ``emv`` (ICC master keys, session keys, ARQC, ARPC, script MACs) and
``keyblock`` (ANSI X9.143 / TR-31 key blocks). The terminal simulator and tests may import these
as a library; nothing else outside ``hsm_sim`` should hold clear keys to call them with.
"""
