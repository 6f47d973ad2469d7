"""Channel adapters: one module per way of reaching an authoriser, behind one interface."""
