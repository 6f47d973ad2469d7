"""The issuer simulator: an issuer host answering ISO 8583 over TCP from its own accounts.

It owns cardholder accounts (balances, holds, limits, PIN tries), decides authorisations with
the PIN, CVV and keys held in the HSM, and offers a gRPC control API for fault injection.
"""
