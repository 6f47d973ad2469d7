"""Pure payment-cryptography algorithms: bytes in, bytes out, no I/O, no state.

One short module per algorithm: ``tdes`` (the block cipher everything here rests on), ``kcv``
(key check values), ``dukpt`` (ANSI X9.24-1 TDES DUKPT), ``pinblock`` (ISO 9564-1 formats 0, 1
and 3), ``ibm3624`` (IBM 3624 offsets and Visa PVV) and ``cvv`` (Visa CVV/CVC, CVV2, iCVV).
The terminal simulator and tests may import these as a library; nothing else outside
``hsm_sim`` should hold clear keys to call them with.
"""
