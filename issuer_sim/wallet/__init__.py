"""The third-party wallet provider simulator (Alipay / WeChat Pay-like "merchant scans the
customer's payment code"): HTTPS with JSON bodies, every request, answer and notification
signed (:mod:`cardswitch.signing`), its own users, payments and refunds in its own tables.

Modules: :mod:`.codes` (payment codes, pure), :mod:`.models` (tables), :mod:`.ledger` (the money
moves, in database transactions), :mod:`.server` (the HTTPS API, test control, notifications),
:mod:`.seed` (demo users and codes), :mod:`.cli` (``cardswitch wallet serve | seed``).
"""
